/* host/watchdog.h — ends a rank that waits too long for the others. A multi-rank run blocks in
 * its collectives (MPI) or, with NCCL, on device work queued behind them; when another rank has
 * stopped (a hung node, a stopped process, a dead NCCL peer) that wait never ends and the job holds
 * its nodes until the scheduler's time limit. A thread of its own times every wait that the host
 * arms, and a second one polls a probe (NCCL's asynchronous error and its reductions in flight);
 * past the limit, or when the probe reports an error, it writes one line and ends the process
 * with status 4 (DG_EXIT_FAILED), which makes mpirun and srun end the other ranks. Neither thread
 * calls MPI. */
#ifndef DG_WATCHDOG_H
#define DG_WATCHDOG_H

#include <stddef.h>

/* Called from the watchdog's poller thread about once a second, for work the main thread does not
 * wait on itself (NCCL's reductions, queued on a stream): 1 with why[why_len] filled on an error
 * (the process ends), else 0 with *pending set to a number that names the newest piece of that
 * work still in flight, 0 when none is. The watchdog times how long one number stays pending, as
 * it times an armed wait: new work queued meanwhile starts the time again (the host is then not
 * stuck). A poll that does not return within the limit counts as stuck too. The probe does its
 * own locking against the main thread and should never wait for it. */
typedef int (*dg_watch_probe)(void *ctx, unsigned long long *pending, char *why, size_t why_len);

typedef struct dg_watchdog dg_watchdog;

/* The limit from DNNGUARD_DIST_TIMEOUT: seconds a rank may wait for the others (default 1800;
 * 0 waits forever). -1 after one line on stderr for a value that is not a number ≥ 0. */
double dg_watchdog_limit_from_env(const char *command);

/* A watchdog for this process; who names it in its line ("train: rank 1 of 2"). NULL when
 * limit_s is 0 (nothing is watched; every call below accepts NULL) or a thread cannot start (after
 * one line: the run goes on unwatched). Time during which the process itself was stopped (SIGSTOP,
 * Slurm suspending the whole job) does not count towards the limit. */
dg_watchdog *dg_watchdog_start(double limit_s, const char *who);
/* A blocking wait begins; what says what is awaited ("the gradient all-reduce"), a string that
 * outlives the wait. */
void dg_watchdog_arm(dg_watchdog *w, const char *what);
void dg_watchdog_disarm(dg_watchdog *w);
/* Poll probe(ctx) from now on; what names its pending work for the line (NULL probe: stop
 * polling; returns only when no poll is under way). */
void dg_watchdog_set_probe(dg_watchdog *w, dg_watch_probe probe, void *ctx, const char *what);
/* Stop polling, stop the threads and free w. */
void dg_watchdog_stop(dg_watchdog *w);

#endif
