/* host/data_folder.h — the folder:DIR data set: PNG images in one folder per class, found, ordered
 * and labelled exactly as torchvision's ImageFolder does, so that class indices agree with a model
 * trained in PyTorch on the same folders. Host memory and files only. */
#ifndef DG_DATA_FOLDER_H
#define DG_DATA_FOLDER_H

#include <stddef.h>

#include "data.h"

/* Limits: at most this many classes, this deep a walk below a class folder, and this many folders
 * read below the class folders in all. A link back to a folder above it is refused (ImageFolder's
 * os.walk would follow it for ever). */
#define DG_FOLDER_MAX_CLASSES 100000
#define DG_FOLDER_MAX_DEPTH 32
#define DG_FOLDER_MAX_FOLDERS 1000000

/* The class names of a split folder: the names of its entries that are folders (links followed),
 * hidden ones included, sorted by byte value (Python's sorted() on the same names). *names is a
 * malloc'd array of *count malloc'd strings (dg_folder_names_free). 0, or -1 with err. */
int dg_folder_classes(const char *split_dir, char ***names, int *count, char *err, size_t err_len);
void dg_folder_names_free(char **names, int count);
/* The class names of folder:DIR, index by index: DIR/train's, or DIR/test's when there is no
 * DIR/train (the classes dg_folder_load labels with). 0, or -1 with err. */
int dg_folder_class_names(const char *dir, char ***names, int *count, char *err, size_t err_len);

/* Load split `train` (1: DIR/train, 0: DIR/test) of folder:DIR into d.
 *  - Classes are DIR/train's class folders (DIR/test's own when there is no DIR/train); a test
 *    class folder that training lacks is refused, a training class with no image is refused.
 *  - Images are the files under each class folder, at any depth (links followed), whose names end
 *    in .png (any case), in ImageFolder's order: class by class, then sorted by folder path, then
 *    by name. Names must be UTF-8 (so that byte order is Python's order), a .png a regular file
 *    with 8 bits or fewer per sample (PIL reads 16-bit PNGs otherwise than png.h). Files with
 *    another image extension of ImageFolder's (.jpg, .jpeg, .ppm, .bmp, .pgm, .tif, .tiff, .webp)
 *    are refused, not skipped; other files are passed over, as ImageFolder passes over them.
 *  - Every image has the size of the first (h, w ≤ 4096). Channels: `channels` 3 makes every image
 *    RGB (grey replicated: ImageFolder's default loader, PIL's convert("RGB")), 1 makes every image
 *    grey (PIL's luma: convert("L"), torchvision's Grayscale on PIL images); 0 gives 1 when every
 *    training image is grey (grey+alpha included), else 3. The test split takes the training
 *    split's channels and must have its size.
 *  - mean and std per channel are the training split's pixels' (population std, on [0, 1]), for
 *    both splits; a channel with no spread gets std 1.
 *  - like (NULL, or a split loaded before from the same DIR and channels, either one, subsetted or
 *    appended to or not): the test split takes like's channels, size, mean and std instead of
 *    decoding DIR/train again to find them.
 * 0, or -1 with err "<path>: <problem>" and d zeroed. */
int dg_folder_load(const char *dir, int train, int channels, const dg_dataset *like, dg_dataset *d, char *err,
                   size_t err_len);

#endif
