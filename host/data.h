/* host/data.h — image classification data sets held in memory as uint8: MNIST and Fashion-MNIST
 * (IDX), CIFAR-10 (binary batches), raw or gzip'd, every size checked; folders of PNG files laid
 * out for torchvision's ImageFolder; plus a SYNTHETIC set of
 * pseudo-random pixels for benchmarks. Host memory only: no augmentation, batching or devices. */
#ifndef DG_DATA_H
#define DG_DATA_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char name[32];       /* "mnist", "fashion-mnist", "cifar10", "folder[-rgb|-grey]", "synthetic" */
    int n, c, h, w, classes;
    uint8_t *images;     /* n·c·h·w bytes, NCHW per image */
    int32_t *labels;     /* n labels, each in 0..classes-1 */
    float mean[3], std[3]; /* per channel, on [0,1] pixels; channels ≥ c repeat channel 0 */
} dg_dataset;

/* Default location of Debian's dataset-fashion-mnist package. */
#define DG_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/* spec:
 *   "mnist:DIR", "fashion-mnist:DIR" — IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte,
 *       t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (each NAME or NAME.gz); "fashion-mnist"
 *       alone reads DG_FASHION_MNIST_DIR.
 *   "cifar10:DIR" — data_batch_1..5.bin (train) or test_batch.bin (test), each NAME or NAME.gz.
 *   "folder:DIR" — PNG files in DIR/train/<class>/ and DIR/test/<class>/, classes, order and labels
 *       as torchvision's ImageFolder gives them, normalised with the training split's statistics;
 *       see data_folder.h. Channels: 1 when every training image is grey, else 3;
 *       "folder-rgb:DIR" makes every image RGB (ImageFolder's default loader), "folder-grey:DIR"
 *       every image grey (PIL's luma, torchvision's Grayscale).
 *   "synthetic:C,H,W,K[,N]" — NOT REAL DATA: N (default 256) images of C×H×W deterministic
 *       pseudo-random pixels (fixed seed; the test split uses another seed than the train split)
 *       with labels i % K, mean 0.5 std 0.25 per channel; for benchmarks and framework comparisons
 *       where no real data set of that shape is at hand (e.g. "synthetic:3,224,224,1000" for
 *       ImageNet-size nets). Nothing in it is learnable. C ≤ 3, K ≤ 100000; classes = K.
 * A file is decompressed when it starts with the gzip magic; a .gz name must hold gzip. Gzip
 * streams must be complete (CRC and length checked; concatenated members allowed, other trailing
 * bytes are an error). IDX payloads must match their header exactly; labels must be < 10.
 * train: 1 = training split, 0 = test split.
 * Returns 0, or -1 with err "<file>: <problem>" (out zeroed; dg_data_free on it is harmless). */
int dg_data_load(const char *spec, int train, dg_dataset *out, char *err, size_t err_len);

/* The test split of spec, given a split of the same spec already loaded (like: NULL, or that
 * split, before or after dg_data_subset or dg_data_append). Equal to dg_data_load(spec, 0, ...),
 * but normalised as like is (its data set's own, or what dg_norm_apply set on it): the test split
 * is fed to the net that like trains; a folder's test split then needs no decoding of DIR/train. A test
 * split whose images are not like's size, or that has more classes than like, is refused (a net built
 * for like could not take it). */
int dg_data_load_test(const char *spec, const dg_dataset *like, dg_dataset *out, char *err, size_t err_len);

/* The DIR of "folder:DIR", "folder-rgb:DIR" or "folder-grey:DIR" (a pointer into spec), and in
 * *channels (may be NULL) 0, 3 or 1 for the three; NULL for any other spec. */
const char *dg_data_folder_dir(const char *spec, int *channels);

void dg_data_free(dg_dataset *d);

/* Keep `count` (1..n) images chosen without replacement by a partial Fisher–Yates shuffle driven
 * by the counter-based RNG (kernels/math/rng.h) from seed, in place; the kept images are in the
 * order drawn. Same seed, same subset. 0 ok; -1 with err. */
int dg_data_subset(dg_dataset *d, int count, uint64_t seed, char *err, size_t err_len);
/* The data-set indices dg_data_subset keeps, in its order: out[count] from n images. 0, or -1 on
 * a bad count or out of memory. */
int dg_data_subset_indices(int n, int count, uint64_t seed, int *out);

/* Append extra's images and labels (same c, h, w; labels < d->classes) to d; d keeps its name and
 * normalisation. 0 ok; -1 with err. */
int dg_data_append(dg_dataset *d, const dg_dataset *extra, char *err, size_t err_len);

/* The input normalisation a user states (--normalize), applied over the one a data set loads with. */
typedef struct dg_norm {
    int given;          /* 0: the data set's own (no option, or "data") */
    int n_mean, n_std;  /* values given: 1 (for every channel) or one per channel (at most 3) */
    float mean[3], std[3];
} dg_norm;

/* text: NULL or "data" (the data set's own), "imagenet" (torchvision's 0.485,0.456,0.406/
 * 0.229,0.224,0.225), "none" (0/1: pixels on [0, 1]) or MEAN/STD, each a comma list of 1 to 3 finite
 * decimal numbers, means in [0, 1], stds in [1e-6, 1e6]. 0, or -1 with err "--normalize: ..." . */
int dg_norm_parse(const char *text, dg_norm *out, char *err, size_t err_len);
/* d's mean and std from norm (nothing when it is not given); -1 with err when a count of values is
 * neither 1 nor d->c. */
int dg_norm_apply(const dg_norm *norm, dg_dataset *d, char *err, size_t err_len);
/* Whether d's normalisation is mean/std on each of its channels, exactly. */
int dg_norm_equal(const dg_dataset *d, const float *mean, const float *std);
/* c channels' mean/std as --normalize text ("0.5/0.5", "m0,m1,m2/s0,s1,s2"), each number the
 * shortest text that reads back as the same float: parsed again, it gives the same values. */
void dg_norm_format(const float *mean, const float *std, int c, char *out, size_t cap);

/* Normalised float image i into out[c·h·w]: (pixel/255 − mean[ch]) / std[ch].
 * An index out of range fills out with zeros. */
void dg_data_image_f32(const dg_dataset *d, int i, float *out);

#endif
