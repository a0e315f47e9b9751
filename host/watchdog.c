/* host/watchdog.c — the thread behind watchdog.h. It wakes about once a second (never more often
 * than half the limit), so arming and disarming are only a lock and two stores on the main thread
 * and a wait is caught within a second of its limit. A wake-up that comes far later than planned
 * means the process was stopped; the waits in progress are credited with that time. */
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
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;   /* only dg_watchdog_stop signals it */
    double limit_s, tick_s;
    char who[96];
    int stopping;
    const char *what;      /* the wait armed now, or NULL */
    double armed_at;       /* CLOCK_MONOTONIC seconds, moved on by stops of the process */
    dg_watch_probe probe;
    void *probe_ctx;
    const char *probe_what;
    unsigned long long pending; /* the probe's oldest work in flight (0: none) */
    double pending_since;
};

static double monotonic_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
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

/* One line and the end of the process: the main thread is stuck, so nothing else can report. */
static void fire(dg_watchdog *w, const char *why) {
    fprintf(stderr, "dnnguard: %s: %s; ending this rank (exit %d)\n", w->who, why, DG_EXIT_FAILED);
    fflush(stderr);
    fflush(stdout);
    _exit(DG_EXIT_FAILED);
}

static void fire_late(dg_watchdog *w, const char *what) {
    char why[320];
    snprintf(why, sizeof why,
             "%s did not complete within %g s: another rank has stopped or is far behind "
             "(DNNGUARD_DIST_TIMEOUT sets the limit)", what, w->limit_s);
    fire(w, why);
}

/* One look, with the lock held. */
static void look(dg_watchdog *w, double now) {
    if (w->what && now - w->armed_at > w->limit_s) fire_late(w, w->what);
    if (!w->probe) return;
    char why[320];
    unsigned long long pending = 0;
    if (w->probe(w->probe_ctx, &pending, why, sizeof why) != 0) fire(w, why);
    if (pending != w->pending) { /* other work than at the last look (or none) */
        w->pending = pending;
        w->pending_since = now;
    } else if (pending && now - w->pending_since > w->limit_s) {
        fire_late(w, w->probe_what);
    }
}

static void *watch(void *arg) {
    dg_watchdog *w = arg;
    pthread_mutex_lock(&w->lock);
    double planned = monotonic_s();
    while (!w->stopping) {
        double now = monotonic_s();
        double late = now - planned;
        if (late > STOPPED_S) { /* the whole process was stopped: that is no one's wait */
            w->armed_at += late;
            w->pending_since += late;
        }
        look(w, now);
        planned = now + w->tick_s;
        struct timespec until = {(time_t)planned, (long)((planned - floor(planned)) * 1e9)};
        int rc;
        do rc = pthread_cond_timedwait(&w->wake, &w->lock, &until);
        while (rc == 0 && !w->stopping && monotonic_s() < planned); /* a spurious wake-up */
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
    ok = ok && pthread_cond_init(&w->wake, &attr) == 0;
    pthread_condattr_destroy(&attr);
    if (!ok || pthread_create(&w->thread, NULL, watch, w) != 0) {
        dg_cli_error("%s: cannot start the thread that times waits on other ranks; running without it", who);
        free(w);
        return NULL;
    }
    return w;
}

void dg_watchdog_arm(dg_watchdog *w, const char *what) {
    if (!w) return;
    pthread_mutex_lock(&w->lock);
    w->what = what;
    w->armed_at = monotonic_s();
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
    pthread_mutex_lock(&w->lock); /* the thread polls with the lock held: no poll is under way now */
    w->probe = probe;
    w->probe_ctx = ctx;
    w->probe_what = what;
    w->pending = 0;
    pthread_mutex_unlock(&w->lock);
}

void dg_watchdog_stop(dg_watchdog *w) {
    if (!w) return;
    pthread_mutex_lock(&w->lock);
    w->stopping = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
