/* tests/tool_png.c — a driver for test_png_pil.py: host/png.c from the command line, so PIL can
 * check what we read and read what we write. Exit 0, or 1 with the reader's message on stderr.
 * Test helper only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/png.h"

/*   tool_png dump IN.png WANT OUT.raw       prints "w h c", writes the w·h·c pixel bytes to OUT.raw
 *   tool_png convert IN.png OUT.png [WANT]  reads (WANT channels, default 0) and writes it back
 *   tool_png write IN.raw W H C OUT.png     writes raw pixel bytes as a PNG */
static int fail(const char *msg) {
    fprintf(stderr, "%s\n", msg);
    return 1;
}

int main(int argc, char **argv) {
    char err[1024];
    dg_image im = {0};
    if (argc == 5 && strcmp(argv[1], "dump") == 0) {
        if (dg_png_read(argv[2], &im, atoi(argv[3]), err, sizeof err) != 0) return fail(err);
        size_t n = (size_t)im.w * im.h * im.channels;
        FILE *f = fopen(argv[4], "wb");
        int ok = f && fwrite(im.pixels, 1, n, f) == n;
        ok = f && fclose(f) == 0 && ok;
        printf("%d %d %d\n", im.w, im.h, im.channels);
        dg_image_free(&im);
        return ok ? 0 : fail("cannot write the raw file");
    }
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "convert") == 0) {
        if (dg_png_read(argv[2], &im, argc == 5 ? atoi(argv[4]) : 0, err, sizeof err) != 0) return fail(err);
        int rc = dg_png_write(argv[3], &im, err, sizeof err);
        dg_image_free(&im);
        return rc == 0 ? 0 : fail(err);
    }
    if (argc == 7 && strcmp(argv[1], "write") == 0) {
        im.w = atoi(argv[3]);
        im.h = atoi(argv[4]);
        im.channels = atoi(argv[5]);
        size_t n = im.w > 0 && im.h > 0 && im.channels > 0 ? (size_t)im.w * im.h * im.channels : 0;
        im.pixels = malloc(n ? n : 1);
        FILE *f = fopen(argv[2], "rb");
        int ok = f && im.pixels && fread(im.pixels, 1, n, f) == n;
        if (f) fclose(f);
        int rc = ok ? dg_png_write(argv[6], &im, err, sizeof err) : -1;
        dg_image_free(&im);
        return rc == 0 ? 0 : fail(ok ? err : "cannot read the raw file");
    }
    return fail("usage: tool_png dump IN WANT OUT.raw | convert IN OUT [WANT] | write IN.raw W H C OUT");
}
