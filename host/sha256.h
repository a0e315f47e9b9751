/* host/sha256.h — SHA-256 (FIPS 180-4) of memory and of files, as lowercase hex: the provenance
 * of keys, registries and fingerprint images (which model a key was made from, which PNG a user
 * was issued). */
#ifndef DG_SHA256_H
#define DG_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct dg_sha256 {
    uint32_t h[8];
    uint64_t bytes;
    unsigned char block[64];
    size_t fill;
} dg_sha256;

void dg_sha256_init(dg_sha256 *s);
void dg_sha256_update(dg_sha256 *s, const void *data, size_t n);
void dg_sha256_final(dg_sha256 *s, char hex[65]);

/* hex digest of a whole file; 0, or -1 with err "<path>: <problem>" */
int dg_sha256_file(const char *path, char hex[65], char *err, size_t err_len);

#endif
