/* host/private_file.c — secret text files written 0600 and atomically, and small text files read
 * whole with a size bound (see private_file.h). */
#include "private_file.h"
#include "input_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int dg_write_private_text(const char *path, const char *text, char *err, size_t err_len) {
    size_t len = strlen(path);
    char *tmp = malloc(len + 16);
    if (!tmp) {
        snprintf(err, err_len, "%s: out of memory", path);
        return -1;
    }
    snprintf(tmp, len + 16, "%s.tmp.XXXXXX", path);
    int rc = -1, fd = mkstemp(tmp); /* mode 0600 */
    if (fd < 0) {
        snprintf(err, err_len, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
    } else {
        FILE *f = fdopen(fd, "w");
        int ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF && fflush(f) == 0 && fsync(fd) == 0;
        ok = (f ? fclose(f) == 0 : (close(fd), 0)) && ok;
        if (!ok || rename(tmp, path) != 0) {
            snprintf(err, err_len, "%s: cannot write: %s", path, strerror(errno));
            unlink(tmp);
        } else {
            rc = 0;
            /* make the rename itself durable: fsync the folder that holds the name */
            char *slash = strrchr(tmp, '/');
            if (slash) slash[slash == tmp ? 1 : 0] = 0;
            int dir = open(slash ? tmp : ".", O_RDONLY | O_DIRECTORY);
            if (dir >= 0) {
                fsync(dir);
                close(dir);
            }
        }
    }
    free(tmp);
    return rc;
}

char *dg_read_small_text(const char *path, size_t max_bytes, size_t *len, char *err, size_t err_len) {
    const char *why;
    FILE *f = dg_fopen_regular(path, &why);
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0) {
        snprintf(err, err_len, "%s: %s", path, f ? strerror(errno) : why);
        if (f) fclose(f);
        return NULL;
    }
    if ((unsigned long long)st.st_size > max_bytes) {
        snprintf(err, err_len, "%s: too large (%lld bytes; at most %zu)", path, (long long)st.st_size, max_bytes);
        fclose(f);
        return NULL;
    }
    size_t want = (size_t)st.st_size;
    char *text = malloc(want + 2);
    size_t got = text ? fread(text, 1, want + 1, f) : 0; /* one more: a file that grew is caught */
    int bad = ferror(f);
    fclose(f);
    if (!text || bad || got > want) {
        snprintf(err, err_len, "%s: %s", path, !text ? "out of memory" : bad ? "read error" : "changed while read");
        free(text);
        return NULL;
    }
    text[got] = 0;
    *len = got;
    return text;
}
