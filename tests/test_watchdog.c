/* tests/test_watchdog.c — host/watchdog.c, the thread that ends a rank waiting too long for the
 * others: DNNGUARD_DIST_TIMEOUT's parsing; short armed waits and a probe that reports nothing never
 * fire, nor does a probe whose work keeps completing; a wait armed past the limit, a probe's work
 * that stays in flight past it, and a probe that reports an error end the process within about a
 * second with exit 4 and one line naming the rank and the wait; so does a probe that never
 * returns, while a slow one does not stretch an armed wait; a stop of the whole process (SIGSTOP,
 * as Slurm suspends a job) is not counted as waiting, and not credited to a wait armed after it
 * (each in a child process, its stderr read back). tests/test_dist_mpi.py stops a real rank under mpirun. */
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "check.h"
#include "host/cli.h"
#include "host/watchdog.h"

static void pause_s(double s) {
    struct timespec t = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&t, &t) != 0) {
    }
}

static void test_limit_from_env(void) {
    unsetenv("DNNGUARD_DIST_TIMEOUT");
    CHECK(dg_watchdog_limit_from_env("t") == 1800.0, "unset: the default of 1800 s");
    const char *good[] = {"0", "2.5", "86400"};
    const double want[] = {0.0, 2.5, 86400.0};
    for (int i = 0; i < 3; i++) {
        setenv("DNNGUARD_DIST_TIMEOUT", good[i], 1);
        CHECK(dg_watchdog_limit_from_env("t") == want[i], "'%s' is %g s", good[i], want[i]);
    }
    const char *bad[] = {"soon", "-1", "5s", "nan", "inf", "1e999", " "};
    fflush(stderr);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        setenv("DNNGUARD_DIST_TIMEOUT", bad[i], 1);
        CHECK(dg_watchdog_limit_from_env("t") < 0.0, "'%s' is refused", bad[i]);
    }
    unsetenv("DNNGUARD_DIST_TIMEOUT");
}

/* What a child did: its exit status (or -signal), its stderr, and how long it ran. */
typedef struct outcome {
    int status;
    char err[1024];
    double seconds;
} outcome;

/* body in a child process; meanwhile the parent runs meddle(child's pid) when given. */
static outcome in_child(void (*body)(void), void (*meddle)(pid_t)) {
    outcome o = {0};
    int pipe_fd[2];
    if (pipe(pipe_fd) != 0) {
        CHECK(0, "pipe");
        return o;
    }
    fflush(stdout);
    fflush(stderr);
    double t0 = dg_now_s();
    pid_t pid = fork();
    if (pid == 0) {
        close(pipe_fd[0]);
        dup2(pipe_fd[1], 2);
        body();
        _exit(0);
    }
    close(pipe_fd[1]);
    if (meddle) meddle(pid);
    size_t got = 0;
    ssize_t n;
    while ((n = read(pipe_fd[0], o.err + got, sizeof o.err - 1 - got)) > 0) got += (size_t)n;
    close(pipe_fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    o.seconds = dg_now_s() - t0;
    o.status = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    return o;
}

/* Many waits, each well inside the limit, over several times the limit: nothing fires. */
static void short_waits(void) {
    dg_watchdog *w = dg_watchdog_start(1.0, "test: rank 0 of 2");
    double t0 = dg_now_s();
    while (dg_now_s() - t0 < 2.5) {
        dg_watchdog_arm(w, "a short wait");
        pause_s(0.2);
        dg_watchdog_disarm(w);
        pause_s(0.05);
    }
    dg_watchdog_stop(w);
}

static void stuck_wait(void) {
    dg_watchdog *w = dg_watchdog_start(0.5, "test: rank 1 of 2");
    dg_watchdog_arm(w, "a wait that never ends");
    pause_s(10.0);
}

static int polls;
/* Work in flight that keeps completing: a new number at every look. */
static int busy_probe(void *ctx, unsigned long long *pending, char *why, size_t why_len) {
    (void)ctx, (void)why, (void)why_len;
    *pending = (unsigned long long)++polls;
    return 0;
}
/* The same work in flight at every look: it never completes. */
static int stuck_probe(void *ctx, unsigned long long *pending, char *why, size_t why_len) {
    (void)ctx, (void)why, (void)why_len;
    *pending = 7;
    return 0;
}
static int failing_probe(void *ctx, unsigned long long *pending, char *why, size_t why_len) {
    int *calls = ctx;
    *pending = 0;
    if (++*calls < 3) return 0;
    snprintf(why, why_len, "the library reports a broken peer");
    return 1;
}

static void busy_probe_body(void) {
    dg_watchdog *w = dg_watchdog_start(0.4, "test: rank 0 of 2");
    dg_watchdog_set_probe(w, busy_probe, NULL, "the busy work");
    pause_s(1.5);
    dg_watchdog_set_probe(w, NULL, NULL, NULL);
    int seen = polls;
    pause_s(0.6);
    dg_watchdog_stop(w);
    /* polled about every 0.2 s while set, never after it was taken away */
    _exit(seen >= 4 && polls == seen ? 0 : 10);
}

static void stuck_probe_body(void) {
    dg_watchdog *w = dg_watchdog_start(0.5, "test: rank 2 of 4");
    dg_watchdog_set_probe(w, stuck_probe, NULL, "the device's reductions");
    pause_s(10.0);
}

static void failing_probe_body(void) {
    static int calls;
    dg_watchdog *w = dg_watchdog_start(2.0, "test: rank 3 of 4");
    dg_watchdog_set_probe(w, failing_probe, &calls, "unused");
    pause_s(10.0);
}

/* A probe that never returns (a driver call waiting on a hung device). */
static int hanging_probe(void *ctx, unsigned long long *pending, char *why, size_t why_len) {
    (void)ctx, (void)pending, (void)why, (void)why_len;
    pause_s(30.0);
    return 0;
}
static void hanging_probe_body(void) {
    dg_watchdog *w = dg_watchdog_start(1.0, "test: rank 1 of 2");
    dg_watchdog_set_probe(w, hanging_probe, NULL, "the device's reductions");
    pause_s(10.0);
}

/* A probe that takes 1.5 s per poll beside a wait that never ends: the wait is still caught at
 * its own limit (the poll's time is no stop of the process). */
static int slow_probe(void *ctx, unsigned long long *pending, char *why, size_t why_len) {
    (void)ctx, (void)why, (void)why_len;
    *pending = 0;
    pause_s(1.5);
    return 0;
}
static void slow_probe_body(void) {
    dg_watchdog *w = dg_watchdog_start(2.0, "test: rank 0 of 2");
    dg_watchdog_set_probe(w, slow_probe, NULL, "the device's reductions");
    dg_watchdog_arm(w, "a wait beside a slow probe");
    pause_s(10.0);
}

/* A wait armed after the process was resumed gets no credit for the stop before it. */
static void wait_after_a_stop(void) {
    dg_watchdog *w = dg_watchdog_start(2.0, "test: rank 0 of 2");
    pause_s(0.3); /* stopped during this one */
    dg_watchdog_arm(w, "a wait armed after a stop");
    pause_s(10.0);
}

/* A wait of 1.5 s of its own, armed across a 4 s stop of the whole process (the parent's SIGSTOP),
 * inside a 3 s limit: the stop is nobody's wait. */
static void wait_across_a_stop(void) {
    dg_watchdog *w = dg_watchdog_start(3.0, "test: rank 0 of 2");
    dg_watchdog_arm(w, "a wait across a stop");
    pause_s(0.3);  /* stopped during this one */
    pause_s(1.2);  /* the watchdog looks at least once more while it is armed */
    dg_watchdog_disarm(w);
    dg_watchdog_stop(w);
}

/* the stop: from 0.1 s into the child's life, for 4 s */
static void stop_for_4s(pid_t pid) {
    pause_s(0.1);
    kill(pid, SIGSTOP);
    pause_s(4.0);
    kill(pid, SIGCONT);
}

int main(void) {
    test_limit_from_env();

    CHECK(dg_watchdog_start(0.0, "none") == NULL, "a limit of 0 watches nothing");
    dg_watchdog_arm(NULL, "x"), dg_watchdog_disarm(NULL), dg_watchdog_set_probe(NULL, NULL, NULL, NULL);
    dg_watchdog_stop(NULL);

    outcome o = in_child(short_waits, NULL);
    CHECK(o.status == 0 && o.err[0] == 0, "short waits never fire (exit %d, stderr '%s')", o.status, o.err);

    o = in_child(stuck_wait, NULL);
    CHECK(o.status == 4, "a stuck wait ends the process with exit 4 (got %d)", o.status);
    CHECK(o.seconds >= 0.5 && o.seconds < 2.0, "... within a second of its 0.5 s limit (%.2f s)", o.seconds);
    CHECK(strstr(o.err, "dnnguard: test: rank 1 of 2: a wait that never ends did not complete within 0.5 s") == o.err
              && strchr(o.err, '\n') == o.err + strlen(o.err) - 1,
          "... with one line naming the rank and the wait: '%s'", o.err);

    o = in_child(busy_probe_body, NULL);
    CHECK(o.status == 0 && o.err[0] == 0, "a probe whose work keeps completing is polled and never fires (exit %d, '%s')",
          o.status, o.err);

    o = in_child(stuck_probe_body, NULL);
    CHECK(o.status == 4 && o.seconds < 2.0
              && strstr(o.err, "rank 2 of 4: the device's reductions did not complete within 0.5 s") != NULL,
          "a probe's work that stays in flight past the limit ends the process (%d, %.2f s, '%s')", o.status,
          o.seconds, o.err);

    o = in_child(failing_probe_body, NULL);
    CHECK(o.status == 4 && strstr(o.err, "rank 3 of 4: the library reports a broken peer") != NULL
              && o.seconds < 4.0,
          "a probe's error ends the process with exit 4 and its reason (%d, %.2f s, '%s')", o.status, o.seconds,
          o.err);
    o = in_child(hanging_probe_body, NULL);
    CHECK(o.status == 4 && o.seconds < 3.0 &&
              strstr(o.err, "asking after the device's reductions did not complete within 1 s") != NULL,
          "a probe that never returns is itself a stuck wait (%d, %.2f s, '%s')", o.status, o.seconds, o.err);

    o = in_child(slow_probe_body, NULL);
    CHECK(o.status == 4 && o.seconds < 3.5 && strstr(o.err, "a wait beside a slow probe did not complete") != NULL,
          "a slow probe does not stretch an armed wait (%d, %.2f s, '%s')", o.status, o.seconds, o.err);

    o = in_child(wait_after_a_stop, stop_for_4s);
    CHECK(o.status == 4 && o.seconds < 7.5 && strstr(o.err, "a wait armed after a stop did not complete") != NULL,
          "a wait armed after a 4 s stop is timed from its arming: ended %.2f s into the child (0.1 + 4 + 2 + a "
          "tick at most), exit %d", o.seconds, o.status);

    o = in_child(wait_across_a_stop, stop_for_4s);
    CHECK(o.status == 0 && o.err[0] == 0, "a stop of the whole process does not count as waiting (exit %d, '%s')",
          o.status, o.err);
    return dg_test_done("test_watchdog");
}
