/* host/infip.h — InFIP's model fingerprints (Xue et al.; docs/infip.md): the reference folder an
 * owner extracts (key images, their relevance-map fingerprints, the raw relevance and a manifest
 * that ties them to a model), the fingerprint image of a relevance map, and ASSIM. No device
 * memory; the relevance pass is host/relevance.h. */
#ifndef DG_INFIP_H
#define DG_INFIP_H

#include <stddef.h>
#include <stdint.h>

#define DG_INFIP_MAX_KEYS 100000
#define DG_INFIP_MANIFEST "manifest.json"
#define DG_INFIP_RELEVANCE "relevance.safetensors"
#define DG_INFIP_CALIBRATION "calibration.json"
#define DG_INFIP_MAX_INDEPENDENT 10000
#define DG_INFIP_MAX_INDEPENDENT_TEXT "10000" /* for messages */
/* Fingerprints with this share of black and white pixels or more keep (almost) no grey level, and
 * SSIM finds every model alike: extract warns, verify and calibrate refuse such a reference. */
#define DG_INFIP_FLAT_SHARE 0.99

typedef struct dg_infip_key {
    int index;            /* the key image's index in its data set split */
    int label;            /* its true label */
    int predicted;        /* the owner's model's class for it: where the relevance was injected */
    char key_file[64];    /* "keys/key-00000.png", relative to the reference folder */
    char key_sha256[65];
    char fp_file[64];     /* "fingerprints/fp-00000.png" */
    char fp_sha256[65];
    float relevance_sum;  /* Σ of its input relevance (1 without biases, with --inject one) */
} dg_infip_key;

typedef struct dg_infip_manifest {
    char net[64];
    char data[512];          /* the data set spec the keys came from */
    char split[8];           /* "test" or "train" */
    char model_sha256[65];   /* the owner's model */
    int c, h, w, classes;    /* the net's input and output */
    float mean[3], std[3];   /* the input normalisation (and so the z^B bounds) */
    float lambda;            /* fingerprint image = clip(round(λ · Σ_c R), 0, 255) */
    float eps;               /* the relevance stabilizer */
    int inject_logit;        /* 0: relevance 1 at the class; 1: the logit */
    char seed[24];           /* the key draw's seed, as decimal text */
    int batch;               /* keys per pass at extraction; 0: not recorded (references before it) */
    int n_keys;
    dg_infip_key *keys;      /* [n_keys] */
    char file_sha256[65];    /* the SHA-256 of the manifest's bytes, set by dg_infip_manifest_read */
} dg_infip_manifest;

/* ---- the manifest (JSON) ---- */
int dg_infip_manifest_write(const dg_infip_manifest *m, const char *path, char *err, size_t err_len);
int dg_infip_manifest_read(const char *path, dg_infip_manifest *m, char *err, size_t err_len);
int dg_infip_manifest_parse(const char *json, size_t len, const char *name, dg_infip_manifest *m, char *err,
                            size_t err_len);
void dg_infip_manifest_free(dg_infip_manifest *m);

/* ---- the calibration (calibration.json beside the manifest, written by `infip calibrate`) ----
 * The ASSIM of independently trained models against the reference, and the threshold they set:
 * per SSIM form, the next double above (the highest independent ASSIM + margin), so that a suspect
 * is called pirated (ASSIM ≥ threshold) only above every independent model. If independent models
 * and a new one are exchangeable, the chance that the new one scores above all n is at most
 * 1/(n + 1), over the draw of all n + 1 (for one fixed calibration the rate varies about it): the
 * false-positive bound the file states. The file names the manifest by its
 * SHA-256, so a calibration never decides for another reference. */
typedef struct dg_infip_null {
    char model[512];      /* the path it was calibrated from (a record; the SHA-256 identifies it) */
    char sha256[65];
    char net[64];
    double assim[2];      /* per dg_ssim_mode; NAN for the Gaussian form where the images are too small */
} dg_infip_null;

typedef struct dg_infip_calibration {
    char manifest_sha256[65];
    char owner_model_sha256[65];
    double margin;           /* added to the highest independent ASSIM, ≥ 0 */
    int n;                   /* independent models */
    dg_infip_null *nulls;    /* [n] */
    int has_gaussian;        /* whether the Gaussian form was computed */
    double highest[2];       /* derived: the highest independent ASSIM per form */
    double threshold[2];     /* derived: nextafter(highest + margin, +inf) per form */
    double false_positive_bound; /* derived: 1 / (n + 1) */
} dg_infip_calibration;

/* Fill highest, threshold and false_positive_bound from nulls and margin. */
void dg_infip_calibration_derive(dg_infip_calibration *c);
int dg_infip_calibration_write(const dg_infip_calibration *c, const char *path, char *err, size_t err_len);
/* Read and check a calibration for the manifest m (its file_sha256 and model; NULL: for any): every
 * field in range, the stored thresholds the ones its ASSIMs give, the manifest the one it names. */
int dg_infip_calibration_parse(const char *json, size_t len, const char *name, const dg_infip_manifest *m,
                               dg_infip_calibration *c, char *err, size_t err_len);
int dg_infip_calibration_read(const char *path, const dg_infip_manifest *m, dg_infip_calibration *c, char *err,
                              size_t err_len);
void dg_infip_calibration_free(dg_infip_calibration *c);

/* ---- fingerprint images and their comparison ---- */

/* The fingerprint image of one input relevance rel [c, h, w]: Σ over channels, times lambda,
 * rounded to the nearest integer (half up) and clipped to 0..255, into img [h·w]. */
void dg_infip_image(const float *rel, int c, int h, int w, float lambda, uint8_t *img);

/* Summary of per-key SSIMs: the mean (ASSIM) and the spread. */
typedef struct dg_infip_stats {
    double assim, min, max, std, median;
    int n, below;     /* keys, keys whose SSIM is under the threshold */
} dg_infip_stats;
void dg_infip_summarize(const double *ssim, int n, double threshold, dg_infip_stats *s);

#endif
