/* host/atomic_file.c — temporary name, fsync, rename; trying outputs before the work (see atomic_file.h). */
#define _XOPEN_SOURCE 700 /* realpath */
#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

static int write_all(int fd, const uint8_t *p, size_t len) {
    while (len) {
        size_t piece = len > ((size_t)1 << 30) ? ((size_t)1 << 30) : len;
        ssize_t w = write(fd, p, piece);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            if (w == 0) errno = EIO;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static void fsync_dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = NULL;
    if (slash) {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        dir = malloc(n + 1);
        if (!dir) return;
        memcpy(dir, path, n);
        dir[n] = 0;
    }
    int fd = open(dir ? dir : ".", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd); /* not every file system can; the rename is done either way */
        close(fd);
    }
    free(dir);
}

int dg_write_atomic(const char *path, const dg_chunk *chunks, size_t n, char *err, size_t err_len) {
    static atomic_uint counter; /* threads of one process writing beside the same path */
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 48);
    if (!tmp) {
        dg_err_set(err, err_len, path, "out of memory");
        return -1;
    }
    snprintf(tmp, plen + 48, "%s.tmp.%ld.%u", path, (long)getpid(), atomic_fetch_add(&counter, 1u));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        dg_err_set(err, err_len, path, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    const char *what = NULL;
    int saved = 0;
    for (size_t i = 0; i < n && !what; i++)
        if (chunks[i].len && write_all(fd, chunks[i].data, chunks[i].len) != 0) what = "write";
    if (!what && fsync(fd) != 0) what = "fsync";
    if (what) saved = errno;
    if (close(fd) != 0 && !what) {
        what = "close";
        saved = errno;
    }
    if (!what && rename(tmp, path) != 0) {
        what = "rename";
        saved = errno;
    }
    if (what) {
        unlink(tmp);
        dg_err_set(err, err_len, path, "%s failed: %s", what, strerror(saved));
    } else {
        fsync_dir_of(path);
    }
    free(tmp);
    return what ? -1 : 0;
}

/* Create and remove "<path><suffix>.<pid>" exclusively: 0, or -1 with err "<path>: <what>: <why>". */
static int probe_beside(const char *path, const char *suffix, const char *what, char *err, size_t err_len) {
    size_t len = strlen(path) + strlen(suffix) + 24;
    char *probe = malloc(len);
    if (!probe) {
        dg_err_set(err, err_len, path, "out of memory");
        return -1;
    }
    snprintf(probe, len, "%s%s.%ld", path, suffix, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) dg_err_set(err, err_len, path, "%s: %s", what, strerror(errno));
    else close(fd), unlink(probe);
    free(probe);
    return fd < 0 ? -1 : 0;
}

int dg_check_writable(const char *path, char *err, size_t err_len) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        dg_err_set(err, err_len, path, "is a folder, not a file to write");
        return -1;
    }
    return probe_beside(path, ".tmp.probe", "cannot be written", err, err_len);
}

int dg_check_openable(const char *path, char *err, size_t err_len) {
    struct stat st;
    if (stat(path, &st) != 0) return dg_check_writable(path, err, err_len);
    if (S_ISDIR(st.st_mode)) {
        dg_err_set(err, err_len, path, "is a folder, not a file to write");
        return -1;
    }
    if (!S_ISREG(st.st_mode)) { /* a FIFO or a device: opening and closing it would end its reader's input */
        if (access(path, W_OK) == 0) return 0;
        dg_err_set(err, err_len, path, "cannot be written: %s", strerror(errno));
        return -1;
    }
    /* no O_CREAT, no O_TRUNC: the file is left as it is */
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        dg_err_set(err, err_len, path, "cannot be written: %s", strerror(errno));
        return -1;
    }
    close(fd);
    return 0;
}

int dg_make_folder(const char *path, char *err, size_t err_len) {
    struct stat st;
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        dg_err_set(err, err_len, path, "cannot create the folder: %s", strerror(errno));
        return -1;
    }
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        dg_err_set(err, err_len, path, "is not a folder");
        return -1;
    }
    return probe_beside(path, "/.probe", "cannot write in the folder", err, err_len);
}

/* path with its folder resolved (links, "." and ".."), for files that may not be there yet; NULL when
 * the folder is not there either (or out of memory). malloc'd. */
static char *resolved_name(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    char *real = dir ? realpath(dir, NULL) : NULL;
    const char *base = slash ? slash + 1 : path;
    char *out = real ? malloc(strlen(real) + strlen(base) + 2) : NULL;
    if (out) sprintf(out, "%s/%s", real, base);
    free(dir);
    free(real);
    return out;
}

int dg_same_file(const char *a, const char *b) {
    if (!a || !b) return 0;
    if (strcmp(a, b) == 0) return 1;
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    char *ra = resolved_name(a), *rb = resolved_name(b);
    int same = ra && rb && strcmp(ra, rb) == 0;
    free(ra);
    free(rb);
    return same;
}
