/* host/watchdog.c — the threads behind watchdog.h. The timer wakes about once a second (never
 * more often than half the limit) and judges: an armed wait, the probe's pending work and a poll
 * of the probe itself are each timed against the limit. The poller calls the probe, without the
 * lock, so a probe that blocks (a driver call that waits on a hung device) cannot stop the timing:
 * the poll that does not return is itself a stuck wait. Arming and disarming are a lock and two
 * stores on the main thread. A timer wake-up much later than planned means the process was
 * stopped; what was already being timed is credited with that time. */
#include "watchdog.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* A wake-up this much later than planned is a stop of the process, not scheduling noise. */
#define STOPPED_S 1.0

struct dg_watchdog {
    pthread_t timer, poller;
    pthread_mutex_t lock;
    pthread_cond_t wake;        /* stop, or a new probe */
    pthread_cond_t idle;        /* a poll ended */
    double limit_s, tick_s;
    char who[96];
    int stopping;
    const char *what;           /* the wait armed now, or NULL */
    double armed_at;            /* dg_now_s (CLOCK_MONOTONIC, as the conditions), moved on by stops */
    dg_watch_probe probe;
    void *probe_ctx;
    const char *probe_what;
    int polling;                /* the poller is inside the probe, since poll_started */
    double poll_started;
    unsigned long long pending; /* the probe's work in flight (0: none), the same since pending_since */
    double pending_since;
};

static struct timespec at_time(double s) {
    struct timespec t = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    if (t.tv_nsec > 999999999) t.tv_nsec = 999999999;
    return t;
}

double dg_watchdog_limit_from_env(const char *command) {
    const char *text = getenv("DNNGUARD_DIST_TIMEOUT");
    if (!text || !*text) return 1800.0;
    char *end = NULL;
    errno = 0;
    double s = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(s) || s < 0.0) {
        dg_cli_error("%s: DNNGUARD_DIST_TIMEOUT must be seconds (a number >= 0; 0 waits forever), not '%s'", command,
                     text);
        return -1.0;
    }
    return s;
}

/* One line and the end of the process: the main thread is stuck, so nothing else can report. The
 * line goes out with write(2), not stdio, whose locks a stuck main thread may hold. */
static void fire(const dg_watchdog *w, const char *why) {
    char line[600];
    int n = snprintf(line, sizeof line, "dnnguard: %s: %s; ending this rank (exit %d)\n", w->who, why, DG_EXIT_FAILED);
    if (n > (int)sizeof line - 1) n = (int)sizeof line - 1;
    for (int at = 0; n > 0 && at < n;) {
        ssize_t put = write(2, line + at, (size_t)(n - at));
        if (put <= 0 && errno != EINTR) break;
        if (put > 0) at += (int)put;
    }
    _exit(DG_EXIT_FAILED);
}

static void fire_late(const dg_watchdog *w, const char *what) {
    char why[320];
    snprintf(why, sizeof why,
             "%s did not complete within %g s: another rank has stopped or is far behind "
             "(DNNGUARD_DIST_TIMEOUT sets the limit)", what, w->limit_s);
    fire(w, why);
}

static void *timer(void *arg) {
    dg_watchdog *w = arg;
    pthread_mutex_lock(&w->lock);
    double planned = dg_now_s();
    while (!w->stopping) {
        double now = dg_now_s();
        double late = now - planned;
        if (late > STOPPED_S) { /* the whole process was stopped: that is no one's wait */
            if (w->what && w->armed_at < planned) w->armed_at += late; /* not a wait armed since */
            if (w->pending && w->pending_since < planned) w->pending_since += late;
            if (w->polling && w->poll_started < planned) w->poll_started += late;
        }
        if (w->what && now - w->armed_at > w->limit_s) fire_late(w, w->what);
        if (w->pending && now - w->pending_since > w->limit_s) fire_late(w, w->probe_what);
        if (w->polling && now - w->poll_started > w->limit_s) {
            char what[200];
            snprintf(what, sizeof what, "asking after %s", w->probe_what);
            fire_late(w, what);
        }
        planned = dg_now_s() + w->tick_s;
        struct timespec until = at_time(planned);
        int rc;
        do rc = pthread_cond_timedwait(&w->wake, &w->lock, &until);
        while (rc == 0 && !w->stopping && dg_now_s() < planned); /* a spurious or a probe's wake-up */
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static void *poller(void *arg) {
    dg_watchdog *w = arg;
    char why[320];
    pthread_mutex_lock(&w->lock);
    while (!w->stopping) {
        if (!w->probe) {
            pthread_cond_wait(&w->wake, &w->lock);
            continue;
        }
        dg_watch_probe probe = w->probe;
        void *ctx = w->probe_ctx;
        w->polling = 1;
        w->poll_started = dg_now_s();
        pthread_mutex_unlock(&w->lock);
        unsigned long long pending = 0;
        int failed = probe(ctx, &pending, why, sizeof why);
        pthread_mutex_lock(&w->lock);
        w->polling = 0;
        pthread_cond_broadcast(&w->idle);
        if (failed) fire(w, why);
        if (pending != w->pending) { /* other work than at the last poll (or none) */
            w->pending = pending;
            w->pending_since = dg_now_s();
        }
        struct timespec until = at_time(dg_now_s() + w->tick_s);
        while (!w->stopping && w->probe && pthread_cond_timedwait(&w->wake, &w->lock, &until) == 0) {
        }
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

dg_watchdog *dg_watchdog_start(double limit_s, const char *who) {
    if (!(limit_s > 0.0)) return NULL;
    dg_watchdog *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->limit_s = limit_s;
    w->tick_s = limit_s / 2 < 1.0 ? limit_s / 2 : 1.0;
    snprintf(w->who, sizeof w->who, "%s", who);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int ok = pthread_mutex_init(&w->lock, NULL) == 0;
    ok = ok && pthread_cond_init(&w->wake, &attr) == 0 && pthread_cond_init(&w->idle, &attr) == 0;
    pthread_condattr_destroy(&attr);
    int timing = ok && pthread_create(&w->timer, NULL, timer, w) == 0;
    if (timing && pthread_create(&w->poller, NULL, poller, w) != 0) {
        pthread_mutex_lock(&w->lock);
        w->stopping = 1;
        pthread_cond_broadcast(&w->wake);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->timer, NULL);
        timing = 0;
    }
    if (!timing) {
        dg_cli_error("%s: cannot start the threads that time waits on other ranks; running without them", who);
        free(w);
        return NULL;
    }
    return w;
}

void dg_watchdog_arm(dg_watchdog *w, const char *what) {
    if (!w) return;
    pthread_mutex_lock(&w->lock);
    w->what = what;
    w->armed_at = dg_now_s();
    pthread_mutex_unlock(&w->lock);
}

void dg_watchdog_disarm(dg_watchdog *w) {
    if (!w) return;
    pthread_mutex_lock(&w->lock);
    w->what = NULL;
    pthread_mutex_unlock(&w->lock);
}

void dg_watchdog_set_probe(dg_watchdog *w, dg_watch_probe probe, void *ctx, const char *what) {
    if (!w) return;
    pthread_mutex_lock(&w->lock);
    while (w->polling) pthread_cond_wait(&w->idle, &w->lock); /* (a poll that hangs: the timer fires) */
    w->probe = probe;
    w->probe_ctx = ctx;
    w->probe_what = what;
    w->pending = 0;
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

void dg_watchdog_stop(dg_watchdog *w) {
    if (!w) return;
    dg_watchdog_set_probe(w, NULL, NULL, NULL);
    pthread_mutex_lock(&w->lock);
    w->stopping = 1;
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->timer, NULL);
    pthread_join(w->poller, NULL);
    pthread_cond_destroy(&w->wake);
    pthread_cond_destroy(&w->idle);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
