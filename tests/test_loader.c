/* tests/test_loader.c — the batch loader (host/loader.c) on a synthetic set with non-square images:
 * every epoch's order is a permutation keyed by seed and epoch only; batches are cut in that order
 * with a partial last one; labels follow their images; and with augmentation every image is exactly
 * its original shifted by (dy, dx) ∈ [-4, 4]² inside a frame of pixel value 0 and maybe mirrored
 * (torchvision's RandomCrop(padding=4) then RandomHorizontalFlip), with all 162 draws occurring
 * and the two offsets drawn independently. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "host/data.h"
#include "host/loader.h"

/* Which (dy, dx, flip) turns the plain image ref into got, or -1: exact float equality, since both
 * sides normalise the same bytes with the same formula. */
static int which_shift(const dg_dataset *d, const float *ref, const float *got) {
    for (int f = 0; f < 2; f++)
        for (int oy = -4; oy <= 4; oy++)
            for (int ox = -4; ox <= 4; ox++) {
                int ok = 1;
                for (int c = 0; c < d->c && ok; c++) {
                    const float pad = -d->mean[c] / d->std[c];
                    for (int y = 0; y < d->h && ok; y++)
                        for (int x = 0; x < d->w && ok; x++) {
                            int sx = f ? d->w - 1 - x : x, iy = y + oy, ix = sx + ox;
                            float want = iy >= 0 && iy < d->h && ix >= 0 && ix < d->w
                                             ? ref[((size_t)c * d->h + iy) * d->w + ix] : pad;
                            ok = got[((size_t)c * d->h + y) * d->w + x] == want;
                        }
                }
                if (ok) return ((oy + 4) * 9 + ox + 4) * 2 + f;
            }
    return -1;
}

static void test_order_and_batches(dg_dataset *d) {
    const int batch = 8; /* 37 images: 4 full batches and one of 5 */
    dg_loader *l = dg_loader_new(d, batch, 7, 1, 0);
    CHECK(l && dg_loader_steps(l) == 5, "37 images at batch 8: %d steps, want 5", l ? dg_loader_steps(l) : -1);
    if (!l) return;
    size_t per = (size_t)d->c * d->h * d->w;
    float *ref = malloc(per * sizeof *ref);
    int *seen = calloc((size_t)d->n, sizeof *seen), *order3 = malloc(sizeof(int) * (size_t)d->n);
    for (int epoch = 0; epoch < 4; epoch++) {
        memset(seen, 0, sizeof(int) * (size_t)d->n);
        dg_loader_begin(l, epoch, 0);
        const float *x;
        const int32_t *labels;
        int n, pos = 0, steps = 0, last = 0, wrong = 0;
        while ((n = dg_loader_next(l, &x, &labels)) > 0) {
            for (int i = 0; i < n; i++) {
                int index = dg_loader_index(l, epoch, pos + i);
                seen[index]++;
                dg_data_image_f32(d, index, ref);
                wrong += labels[i] != d->labels[index] || memcmp(ref, x + per * (size_t)i, per * sizeof *ref) != 0;
            }
            pos += n, steps++, last = n;
        }
        int perm = 1;
        for (int i = 0; i < d->n; i++) perm &= seen[i] == 1;
        CHECK(steps == 5 && last == 5 && pos == 37, "epoch %d: %d batches, last of %d, %d images", epoch, steps, last,
              pos);
        CHECK(perm, "epoch %d: the order is not a permutation", epoch);
        CHECK(wrong == 0, "epoch %d: %d images or labels are not those of their order position", epoch, wrong);
    }
    for (int i = 0; i < d->n; i++) order3[i] = dg_loader_index(l, 3, i);
    int moved = 0;
    for (int i = 0; i < d->n; i++) moved += dg_loader_index(l, 2, i) != order3[i];
    CHECK(moved > d->n / 2, "epochs 2 and 3 share most of their order (%d of %d positions differ)", moved, d->n);
    dg_loader_free(l);
    /* the same seed gives the same order; another seed another one; a later start step the same tail */
    dg_loader *a = dg_loader_new(d, batch, 7, 1, 0), *b = dg_loader_new(d, batch, 8, 1, 0);
    int same = 1, other = 0;
    for (int i = 0; i < d->n; i++) same &= dg_loader_index(a, 3, i) == order3[i], other += dg_loader_index(b, 3, i) != order3[i];
    CHECK(same && other > d->n / 2, "seed 7 again: same order %d; seed 8: %d of %d positions differ", same, other, d->n);
    dg_loader_begin(a, 3, 2); /* resume at step 2: its first batch holds positions 16..23 */
    const float *x;
    const int32_t *labels;
    int n = dg_loader_next(a, &x, &labels), match = n == batch;
    for (int i = 0; i < n && match; i++) match = labels[i] == d->labels[order3[16 + i]];
    CHECK(match, "begin at step 2 yields positions 16..23 of the epoch's order (%d images)", n);
    dg_loader_free(a);
    dg_loader_free(b);
    free(ref), free(seen), free(order3);
}

static void test_augmentation(dg_dataset *d) {
    dg_loader *l = dg_loader_new(d, 64, 11, 1, 1);
    if (!l) {
        CHECK(0, "loader with augmentation");
        return;
    }
    size_t per = (size_t)d->c * d->h * d->w;
    float *ref = malloc(per * sizeof *ref);
    static long count[162];
    long not_shifts = 0, wrong_label = 0, total = 0;
    for (int epoch = 0; epoch < 300; epoch++) {
        dg_loader_begin(l, epoch, 0);
        const float *x;
        const int32_t *labels;
        int n, pos = 0;
        while ((n = dg_loader_next(l, &x, &labels)) > 0) {
            for (int i = 0; i < n; i++) {
                int index = dg_loader_index(l, epoch, pos + i);
                dg_data_image_f32(d, index, ref);
                int k = which_shift(d, ref, x + per * (size_t)i);
                if (k < 0) not_shifts++;
                else count[k]++;
                wrong_label += labels[i] != d->labels[index];
                total++;
            }
            pos += n;
        }
    }
    int missing = 0;
    for (int k = 0; k < 162; k++) missing += count[k] == 0;
    CHECK(not_shifts == 0 && wrong_label == 0, "%ld of %ld augmented images are no shift and flip of their original; "
          "%ld labels wrong", not_shifts, total, wrong_label);
    CHECK(missing == 0, "%d of the 162 (dy, dx, flip) draws never occur in %ld images", missing, total);
    /* independence: chi-square of the 9×9 offset table against the product of its margins
     * (64 degrees of freedom: 99.9% quantile 112) and of flip against dy */
    double row[9] = {0}, col[9] = {0}, cell[9][9] = {{0}}, flips = 0, flip_row[9] = {0};
    for (int k = 0; k < 162; k++) {
        int f = k % 2, oy = k / 2 / 9, ox = k / 2 % 9;
        cell[oy][ox] += (double)count[k], row[oy] += (double)count[k], col[ox] += (double)count[k];
        flips += f * (double)count[k], flip_row[oy] += f * (double)count[k];
    }
    double chi = 0.0, chi_flip = 0.0;
    for (int a = 0; a < 9; a++) {
        for (int b = 0; b < 9; b++) {
            double e = row[a] * col[b] / (double)total;
            chi += (cell[a][b] - e) * (cell[a][b] - e) / e;
        }
        double e = row[a] * flips / (double)total, e0 = row[a] - e;
        chi_flip += (flip_row[a] - e) * (flip_row[a] - e) / e + (row[a] - flip_row[a] - e0) * (row[a] - flip_row[a] - e0) / e0;
    }
    CHECK(chi < 112.0 && chi_flip < 26.1, "offsets not independent: chi-square %.1f (64 dof), flip against dy %.1f "
          "(8 dof)", chi, chi_flip);
    for (int a = 0; a < 9; a++)
        CHECK(fabs(row[a] / (double)total - 1.0 / 9.0) < 0.01 && fabs(col[a] / (double)total - 1.0 / 9.0) < 0.01,
              "offset %d drawn with frequency %.4f (dy) %.4f (dx), want 1/9", a - 4, row[a] / (double)total,
              col[a] / (double)total);
    dg_loader_free(l);
    free(ref);
}

int main(void) {
    char err[512];
    dg_dataset d;
    /* 3 channels of 6 × 5: a swapped h and w or a wrong plane stride cannot pass */
    if (dg_data_load("synthetic:3,6,5,4,37", 1, &d, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    test_order_and_batches(&d);
    dg_data_free(&d);
    if (dg_data_load("synthetic:3,6,5,4,1000", 1, &d, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    test_augmentation(&d);
    dg_data_free(&d);
    return dg_test_done("test_loader");
}
