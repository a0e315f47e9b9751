/* bench/bench_ssim.c — dg_bench_ssim DIR_A DIR_B N REPS: SSIM pairs per second of host/ssim.c, both
 * forms, on the N pairs DIR_A/fp-%05d.png ~ DIR_B/fp-%05d.png (fingerprint images an InFIP run
 * wrote), each pair REPS times. Reading the PNGs is not timed. Prints one JSON line per form with
 * the mean SSIM (so the peer can check it computed the same thing); decides nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "host/png.h"
#include "host/ssim.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: dg_bench_ssim DIR_A DIR_B N REPS\n");
        return 2;
    }
    int n = atoi(argv[3]), reps = atoi(argv[4]);
    if (n < 1 || reps < 1) {
        fprintf(stderr, "dg_bench_ssim: N and REPS must be positive\n");
        return 2;
    }
    dg_image *a = calloc((size_t)n, sizeof *a), *b = calloc((size_t)n, sizeof *b);
    char path[4200], err[512];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/fp-%05d.png", argv[1], i);
        int ok = dg_png_read(path, &a[i], 1, err, sizeof err) == 0;
        snprintf(path, sizeof path, "%s/fp-%05d.png", argv[2], i);
        ok = ok && dg_png_read(path, &b[i], 1, err, sizeof err) == 0;
        if (!ok || a[i].w != b[i].w || a[i].h != b[i].h) {
            fprintf(stderr, "dg_bench_ssim: %s\n", ok ? "images of different sizes" : err);
            return 2;
        }
    }
    const dg_ssim_mode modes[2] = {DG_SSIM_GLOBAL, DG_SSIM_GAUSSIAN};
    for (int m = 0; m < 2; m++) {
        double sum = 0.0, t0 = now_s();
        for (int r = 0; r < reps; r++)
            for (int i = 0; i < n; i++) sum += dg_ssim(a[i].pixels, b[i].pixels, a[i].h, a[i].w, modes[m]);
        double seconds = now_s() - t0;
        printf("{\"impl\": \"dnnguard\", \"mode\": \"%s\", \"size\": \"%dx%d\", \"pairs\": %d, \"seconds\": %.6f, "
               "\"pairs_per_s\": %.1f, \"mean_ssim\": %.9f}\n",
               dg_ssim_mode_name(modes[m]), a[0].w, a[0].h, n * reps, seconds, n * reps / seconds, sum / (n * reps));
    }
    for (int i = 0; i < n; i++) dg_image_free(&a[i]), dg_image_free(&b[i]);
    free(a), free(b);
    return 0;
}
