/* host/input_file.c — a regular file opened for reading without blocking on anything else
 * (host/input_file.h). */
#include "input_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int dg_open_regular(const char *path) {
    struct stat st;
    /* looked at before it is opened: opening a FIFO blocks for ever, and opening and closing one
     * would end a writer waiting on it */
    if (stat(path, &st) != 0) return -1;
    if (!S_ISREG(st.st_mode)) return DG_NOT_REGULAR;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) { /* replaced in between */
        int saved = errno;
        close(fd);
        errno = saved;
        return DG_NOT_REGULAR;
    }
    return fd;
}

FILE *dg_fopen_regular(const char *path, const char **why) {
    int fd = dg_open_regular(path);
    FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
    if (!f) {
        *why = fd == DG_NOT_REGULAR ? "not a regular file" : strerror(errno);
        if (fd >= 0) close(fd);
    }
    return f;
}
