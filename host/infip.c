/* host/infip.c — InFIP's fingerprint image of a relevance map and the ASSIM summary (infip.h). */
#include "infip.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void dg_infip_image(const float *rel, int c, int h, int w, float lambda, uint8_t *img) {
    size_t plane = (size_t)h * w;
    for (size_t p = 0; p < plane; p++) {
        double sum = 0.0;
        for (int ch = 0; ch < c; ch++) sum += rel[(size_t)ch * plane + p];
        double v = floor((double)lambda * sum + 0.5);
        img[p] = (uint8_t)(!(v > 0.0) ? 0 : v >= 255.0 ? 255 : (int)v); /* NaN → 0: v > 0 is false for it */
    }
}

static int by_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void dg_infip_summarize(const double *ssim, int n, double threshold, dg_infip_stats *s) {
    memset(s, 0, sizeof *s);
    s->n = n;
    if (n < 1) return;
    double sum = 0.0, *sorted = malloc(sizeof(double) * (size_t)n);
    s->min = s->max = ssim[0];
    for (int i = 0; i < n; i++) {
        sum += ssim[i];
        if (ssim[i] < s->min) s->min = ssim[i];
        if (ssim[i] > s->max) s->max = ssim[i];
        s->below += ssim[i] < threshold;
    }
    s->assim = sum / n;
    double var = 0.0;
    for (int i = 0; i < n; i++) var += (ssim[i] - s->assim) * (ssim[i] - s->assim);
    s->std = sqrt(var / n);
    if (sorted) {
        memcpy(sorted, ssim, sizeof(double) * (size_t)n);
        qsort(sorted, (size_t)n, sizeof *sorted, by_double);
        s->median = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
        free(sorted);
    } else {
        s->median = NAN;
    }
}
