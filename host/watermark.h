/* host/watermark.h — the ActiveGuard weight watermark (§III-E, Algorithm 1): keys (generation
 * from a clean model, JSON files), the regularizer that embeds a key while training, and
 * extraction/verification from any weight file. Conv weights are OIHW (the paper's F,F,I,O). */
#ifndef DG_WATERMARK_H
#define DG_WATERMARK_H

#include <stddef.h>
#include <stdint.h>

#include "net.h"

#define DG_WM_MAX_DIGITS 4096

typedef struct dg_wm_key {
    char layer[DG_NAME_MAX]; /* the conv weight's state-dict name, e.g. "conv2.weight" */
    int shape[4];            /* its O, I, R, S */
    int filter;              /* the output filter carrying the watermark: the clean model's largest L2 norm */
    int n;                   /* number of digits */
    int32_t positions[DG_WM_MAX_DIGITS]; /* inside the filter, flat (i, r, s) order: 0 ≤ p < I·R·S, distinct */
    uint8_t digits[DG_WM_MAX_DIGITS];    /* 0..9 */
    float a, b;              /* the map d = a·h + b, fitted so [w_min, w_max] → [0, 9] */
    float w_min, w_max;      /* the clean filter's range */
    uint64_t seed;           /* drew the positions */
    char model_sha256[65];   /* of the clean model file ("" when unknown) */
} dg_wm_key;

/* Make a key from the clean layer tensor w [O,I,R,S] (host memory) and a digit string.
 * 0, or -1 with err: a digit outside 0–9, more digits than I·R·S, a constant filter. */
int dg_wm_keygen(const float *w, const int shape[4], const char *layer, const char *digits, uint64_t seed,
                 dg_wm_key *key, char *err, size_t err_len);

/* Key files: JSON, written atomically with mode 0600 (it is a secret); reading checks every
 * field (shape, ranges, distinct positions, finite map). 0, or -1 with err "<path>: <problem>". */
int dg_wm_key_write(const dg_wm_key *key, const char *path, char *err, size_t err_len);
int dg_wm_key_read(const char *path, dg_wm_key *key, char *err, size_t err_len);
/* The same from JSON text (what the fuzzer drives); name is used in messages. */
int dg_wm_key_parse(const char *json, size_t len, const char *name, dg_wm_key *key, char *err, size_t err_len);

/* ---- verification (Algorithm 1) ---- */

typedef enum {
    DG_WM_SEARCH_KEY,      /* only the key's filter at the key's positions */
    DG_WM_SEARCH_FILTERS,  /* every output filter (survives a permutation of the output channels) */
    DG_WM_SEARCH_CHANNELS, /* every output filter and any assignment of input channels (survives both) */
} dg_wm_search;

typedef struct dg_wm_result {
    int filter;          /* where the reported digits were read (the key's filter unless a search found another) */
    int matches;         /* digits that equal the key's */
    int verified;        /* matches ≥ the required count */
    int extracted[DG_WM_MAX_DIGITS];  /* round(map(v)); may lie outside 0..9 */
    float residual[DG_WM_MAX_DIGITS]; /* |map(v) − d| */
    int32_t channel_of[DG_WM_MAX_DIGITS]; /* input channel each digit was read from */
    int input_permuted;  /* the digits were found under a non-identity input-channel assignment */
    int matched_by;      /* the stage that found the digits (a dg_wm_search: key, filters, channels), -1: none */
    double p_chance;     /* estimated chance that a layer with this weight distribution but no
                            watermark passes that stage (none found: the whole search asked for) with
                            the same number of digits needed (an independence estimate) */
} dg_wm_result;

/* Extract and compare on the layer tensor w (host, shape == key->shape). need: digits that must
 * match (key->n for Algorithm 1's exact match). 0, or -1 when out of memory (r says nothing then:
 * no verdict, rather than "not verified"). */
int dg_wm_verify(const dg_wm_key *key, const float *w, dg_wm_search search, int need, dg_wm_result *r);

/* ---- embedding: the regularizer inside a training loop ---- */

typedef struct dg_wm_embed {
    const dg_wm_key *key;
    float lambda;
    float *w, *dw;       /* device: the layer's weight and gradient inside the net's arenas */
    int32_t *idx;        /* device: flat positions in the layer tensor */
    float *digits;       /* device */
    float *mapped;       /* device [n] */
    float *mapped_host;  /* [n] */
} dg_wm_embed;

/* Bind key to net (set up on a backend): the layer must be a conv weight of net with the key's
 * shape. 0, or -1 with err. */
int dg_wm_embed_init(dg_wm_embed *e, const dg_wm_key *key, float lambda, dg_net *net, char *err, size_t err_len);
void dg_wm_embed_free(dg_wm_embed *e, const dg_backend *be);
/* After the backward walk (apply_grad 1): add the regularizer's gradient to the layer's gradient.
 * Returns the regularizer's value λ·(1/n)·Σ(d − map(v))² at the current weights, and the digits
 * that already extract correctly in *matches (apply_grad 0: only these). */
double dg_wm_embed_step(dg_wm_embed *e, const dg_backend *be, int apply_grad, int *matches);
/* Data parallelism: the same for positions [first, first + count) of the key only (a rank's share),
 * gradient applied; returns that share of the regularizer's value, so the ranks' values sum to it. */
double dg_wm_embed_step_part(dg_wm_embed *e, const dg_backend *be, int first, int count);

#endif
