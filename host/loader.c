/* host/loader.c — the batch pipeline behind loader.h: one worker thread, two batch slots. The
 * worker only ever builds the batch it was asked for, so timing never changes what a batch holds. */
#include "loader.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/math/pixel.h"
#include "../kernels/math/rng.h"
#include "dist.h"

enum { SLOTS = 2, PAD = 4 };

struct dg_loader {
    const dg_dataset *ds;
    int batch, steps, shuffle, augment;
    int rank, ranks;   /* this loader yields rank's share of each batch (0 of 1: all of it) */
    uint64_t seed;
    int *order;        /* the epoch's permutation */
    int order_epoch;   /* which epoch `order` holds, -1 none */
    int epoch, next_step;
    float *x[SLOTS];
    int32_t *labels[SLOTS];
    int slot_step[SLOTS]; /* the step a slot holds or is being filled with, -1 none */
    int slot_ready[SLOTS];
    int slot_n[SLOTS];
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int job_slot;         /* slot the worker should fill next, -1 none */
    int quit;
};

static void make_order(dg_loader *l, int epoch) {
    if (l->order_epoch == epoch) return;
    int n = l->ds->n;
    for (int i = 0; i < n; i++) l->order[i] = i;
    if (l->shuffle) {
        uint64_t stream = dg_rng_stream(l->seed, 0x5eed0000ull + (uint64_t)epoch);
        for (int i = n - 1; i > 0; i--) {
            int j = (int)(dg_rng_u64(stream, (uint64_t)i) % (uint64_t)(i + 1));
            int t = l->order[i];
            l->order[i] = l->order[j];
            l->order[j] = t;
        }
    }
    l->order_epoch = epoch;
}

int dg_loader_index(dg_loader *l, int epoch, int pos) {
    make_order(l, epoch);
    return l->order[pos];
}

/* One image into out, normalised; with augmentation, shifted by (dy, dx) inside a zero-padded
 * frame (the pad is pixel value 0 before normalisation, as torchvision pads) and maybe mirrored. */
static void build_image(const dg_loader *l, int index, uint64_t aug_key, float *out) {
    const dg_dataset *ds = l->ds;
    int c = ds->c, h = ds->h, w = ds->w;
    if (!l->augment) {
        dg_data_image_f32(ds, index, out);
        return;
    }
    /* the two offsets and the flip from disjoint bits, so they are independent as torchvision's
     * draws are: oy from bits 0-31, ox from 32-62, the flip from bit 63 (when ox took bits 8-63
     * and oy 0-63, each ox made four oy values 29/256 likely and five 28/256) */
    uint64_t bits = dg_rng_u64(dg_rng_stream(l->seed, 0xa0600000ull + (uint64_t)l->epoch), aug_key);
    int oy = (int)((uint32_t)bits % (2 * PAD + 1)) - PAD;
    int ox = (int)(((bits >> 32) & 0x7fffffffu) % (2 * PAD + 1)) - PAD;
    int flip = (int)(bits >> 63);
    const uint8_t *img = ds->images + (size_t)index * c * h * w;
    for (int ch = 0; ch < c; ch++) {
        int cc = ch < 3 ? ch : 0; /* as dg_data_image_f32 */
        float scale = dg_pixel_scale(ds->std[cc]), shift = dg_pixel_shift(ds->mean[cc], ds->std[cc]);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int sx = flip ? w - 1 - x : x;
                int iy = y + oy, ix = sx + ox;
                float pixel = (iy >= 0 && iy < h && ix >= 0 && ix < w) ? img[((size_t)ch * h + iy) * w + ix] : 0;
                out[((size_t)ch * h + y) * w + x] = dg_pixel_normalize(pixel, scale, shift);
            }
    }
}

int dg_loader_batch_images(const dg_loader *l, int step) {
    int begin = step * l->batch;
    if (step < 0 || step >= l->steps) return 0;
    return l->ds->n - begin < l->batch ? l->ds->n - begin : l->batch;
}

/* The share of the global batch is cut from the epoch's order, and each image keeps the
 * augmentation key of its global position: a rank's images are exactly those of the whole batch. */
static void fill_slot(dg_loader *l, int slot, int step) {
    const dg_dataset *ds = l->ds;
    size_t per = (size_t)ds->c * ds->h * ds->w;
    int lo, hi;
    dg_dist_share(dg_loader_batch_images(l, step), l->rank, l->ranks, &lo, &hi);
    int begin = step * l->batch + lo, n = hi - lo;
    for (int i = 0; i < n; i++) {
        int index = l->order[begin + i];
        build_image(l, index, (uint64_t)(begin + i), l->x[slot] + per * (size_t)i);
        l->labels[slot][i] = ds->labels[index];
    }
    l->slot_n[slot] = n;
}

static void *worker(void *arg) {
    dg_loader *l = arg;
    pthread_mutex_lock(&l->lock);
    for (;;) {
        while (!l->quit && l->job_slot < 0) pthread_cond_wait(&l->cond, &l->lock);
        if (l->quit) break;
        int slot = l->job_slot;
        int step = l->slot_step[slot];
        pthread_mutex_unlock(&l->lock);
        fill_slot(l, slot, step);
        pthread_mutex_lock(&l->lock);
        l->slot_ready[slot] = 1;
        l->job_slot = -1;
        pthread_cond_broadcast(&l->cond);
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

/* Free everything but the (joined or never started) worker thread. */
static void release(dg_loader *l) {
    for (int s = 0; s < SLOTS; s++) {
        free(l->x[s]);
        free(l->labels[s]);
    }
    free(l->order);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->cond);
    free(l);
}

dg_loader *dg_loader_new(const dg_dataset *ds, int batch, uint64_t seed, int shuffle, int augment) {
    if (batch < 1 || ds->n < 1) return NULL;
    dg_loader *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->ds = ds;
    l->batch = batch;
    l->steps = (int)(((long long)ds->n + batch - 1) / batch);
    l->seed = seed;
    l->shuffle = shuffle;
    l->augment = augment;
    l->ranks = 1;
    l->order_epoch = -1;
    l->job_slot = -1;
    l->order = malloc(sizeof(int) * (size_t)ds->n);
    /* a slot holds at most one step's images: a --batch above the set is one step of all of them */
    size_t per = (size_t)ds->c * ds->h * ds->w, slot_images = (size_t)(batch < ds->n ? batch : ds->n);
    int ok = l->order != NULL;
    for (int s = 0; s < SLOTS; s++) {
        l->x[s] = malloc(sizeof(float) * per * slot_images);
        l->labels[s] = malloc(sizeof(int32_t) * slot_images);
        l->slot_step[s] = -1;
        ok = ok && l->x[s] && l->labels[s];
    }
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->cond, NULL);
    if (!ok || pthread_create(&l->thread, NULL, worker, l) != 0) {
        release(l);
        return NULL;
    }
    return l;
}

static void wait_idle(dg_loader *l) {
    while (l->job_slot >= 0) pthread_cond_wait(&l->cond, &l->lock);
}

void dg_loader_free(dg_loader *l) {
    if (!l) return;
    pthread_mutex_lock(&l->lock);
    l->quit = 1;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
    pthread_join(l->thread, NULL);
    release(l);
}

int dg_loader_steps(const dg_loader *l) { return l->steps; }

void dg_loader_shard(dg_loader *l, int rank, int ranks) {
    pthread_mutex_lock(&l->lock); /* the worker reads them when it fills a slot */
    l->rank = rank;
    l->ranks = ranks > 0 ? ranks : 1;
    pthread_mutex_unlock(&l->lock);
}

/* Ask the worker for `step` in a free slot (caller holds the lock, worker idle). */
static void request(dg_loader *l, int slot, int step) {
    l->slot_step[slot] = step;
    l->slot_ready[slot] = 0;
    l->job_slot = slot;
    pthread_cond_broadcast(&l->cond);
}

void dg_loader_begin(dg_loader *l, int epoch, int first_step) {
    pthread_mutex_lock(&l->lock);
    wait_idle(l);
    l->epoch = epoch;
    make_order(l, epoch);
    l->next_step = first_step;
    for (int s = 0; s < SLOTS; s++) l->slot_step[s] = -1;
    if (first_step < l->steps) request(l, 0, first_step);
    pthread_mutex_unlock(&l->lock);
}

int dg_loader_next(dg_loader *l, const float **x, const int32_t **labels) {
    pthread_mutex_lock(&l->lock);
    int step = l->next_step;
    if (step >= l->steps) {
        pthread_mutex_unlock(&l->lock);
        return 0;
    }
    int slot = l->slot_step[0] == step ? 0 : l->slot_step[1] == step ? 1 : -1;
    if (slot < 0) { /* never requested (cannot happen after begin), build it now */
        wait_idle(l);
        slot = 0;
        request(l, slot, step);
    }
    while (!l->slot_ready[slot]) pthread_cond_wait(&l->cond, &l->lock);
    /* the other slot is free now (its batch was consumed): prefetch the next step into it */
    if (step + 1 < l->steps) request(l, 1 - slot, step + 1);
    l->next_step = step + 1;
    *x = l->x[slot];
    *labels = l->labels[slot];
    int n = l->slot_n[slot];
    pthread_mutex_unlock(&l->lock);
    return n;
}
