/* host/fingerprint.h — ActiveGuard's users' fingerprints (§III-B to §III-D): the allocation of
 * (class, confidence) identities, the registry file that records who got which fingerprint, the
 * authentication rule, and the control layer's random answers for everybody else. No device
 * memory; the generator is host/cw.h. */
#ifndef DG_FINGERPRINT_H
#define DG_FINGERPRINT_H

#include <stddef.h>
#include <stdint.h>

#define DG_FP_MAX_CLASSES 1000
#define DG_FP_MAX_CONFS 256
#define DG_FP_MAX_USERS 65536

typedef struct dg_fp_user {
    int id;              /* class index · T + confidence index */
    int cls;             /* the class t the model must answer */
    float conf;          /* the confidence c it must answer with */
    int source;          /* index of the source image in the data set's split */
    char file[64];       /* the PNG, relative to the registry's folder */
    char sha256[65];     /* of that PNG */
    float l2;            /* ||fingerprint − source||₂ on [0, 1] pixels */
    float p_issue;       /* softmax(z)_t the model gave it when it was issued */
} dg_fp_user;

typedef struct dg_fp_registry {
    char net[64];
    char data[512];          /* the data set spec the sources came from */
    char split[8];           /* "test" or "train" */
    char model_sha256[65];   /* the model the fingerprints were made for */
    int c, h, w, classes;    /* the net's input and output */
    float mean[3], std[3];   /* the input normalisation */
    float eps;               /* authentication window: |P − c| < eps */
    float margin;            /* every issued fingerprint was within margin of its c */
    int n_classes_fp, classes_fp[DG_FP_MAX_CLASSES]; /* L_fp, in user order */
    int n_confs;
    float confs[DG_FP_MAX_CONFS];                    /* C_fp, in user order */
    int n_users;
    dg_fp_user *users;       /* [n_users], ids increasing (a user whose fingerprint failed is absent) */
} dg_fp_registry;

/* ---- allocation ---- */

/* Parse "0-9" / "1,3,5" / "0-4,7" into sorted distinct classes < k. Count, or -1 with err. */
int dg_fp_parse_classes(const char *text, int k, int *out, int cap, char *err, size_t err_len);
/* Parse "0.2,0.3,0.4" into confidences in (0, 1), strictly increasing, whose windows (c − eps,
 * c + eps) do not overlap and stay inside (0, 1]. Count, or -1 with err. */
int dg_fp_parse_confs(const char *text, float eps, float *out, int cap, char *err, size_t err_len);
/* Whether the windows (a ± eps) and (b ± eps), a < b, do not overlap: b − a ≥ 2·eps, with a
 * tolerance of 1e-6 so that windows that just touch (the spacing the capacity formula assumes)
 * pass whatever the float rounding of the three numbers. The one test of --conf and registries. */
int dg_fp_windows_apart(float a, float b, float eps);

/* The paper's capacity N = K·(z2 − z1)/(2ε) for confidences in (z1, z2). */
double dg_fp_capacity(int classes, double z1, double z2, double eps);

/* ---- the registry file (JSON, written 0600) ---- */
int dg_fp_registry_write(const dg_fp_registry *r, const char *path, char *err, size_t err_len);
int dg_fp_registry_read(const char *path, dg_fp_registry *r, char *err, size_t err_len);
int dg_fp_registry_parse(const char *json, size_t len, const char *name, dg_fp_registry *r, char *err,
                         size_t err_len);
void dg_fp_registry_free(dg_fp_registry *r);
/* ActiveGuard's identity of class t and confidence j (DESIGN: t·T + j, T = |C_fp|), whether or not
 * every class is in L_fp; ids lie in 0 .. classes·T − 1. */
int dg_fp_identity(const dg_fp_registry *r, int cls, int j);
int dg_fp_identity_count(const dg_fp_registry *r);
/* Whether class cls is one of L_fp (r->classes_fp). */
int dg_fp_is_fp_class(const dg_fp_registry *r, int cls);
/* Index in r->users of the user with this id, or −1 when none was issued. */
int dg_fp_find_user(const dg_fp_registry *r, int id);

/* ---- authentication ---- */

typedef struct dg_fp_decision {
    int authorized;
    int predicted;   /* argmax of the probabilities (the first on a tie); −1 when any is not finite */
    float p_max;     /* their maximum; NaN when any is not finite */
    int user;        /* the identity (class·T + confidence index), −1 when refused */
    float conf;      /* the matched confidence */
} dg_fp_decision;

/* ActiveGuard's rule on one image's probabilities [r->classes]: argmax ∈ L_fp and
 * |max P − c| < eps for some c ∈ C_fp. Refused where it names no one identity: a probability
 * that is not finite, a maximum shared by two classes, a p_max inside two touching windows. */
void dg_fp_decide(const dg_fp_registry *r, const float *probs, dg_fp_decision *d);

/* The control layer's answer to an unauthorised query: a class drawn uniformly from the seeded
 * counter RNG (query index i), the same for the same seed and query. */
int dg_fp_random_class(uint64_t seed, uint64_t i, int classes);

#endif
