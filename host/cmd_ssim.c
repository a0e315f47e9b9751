/* host/cmd_ssim.c — `dnnguard ssim A.png B.png [--mode global|gaussian]`: the SSIM of two images of
 * the same size and channels, as JSON (the tool InFIP's verification uses per key, on its own). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "png.h"
#include "ssim.h"

int dg_cmd_ssim(int argc, char **argv) {
    const char *paths[2] = {NULL, NULL}, *mode_text = "global";
    int n_paths = 0;
    while (n_paths < 2 && argc > 0 && strncmp(argv[0], "--", 2) != 0) paths[n_paths++] = argv[0], argc--, argv++;
    if (n_paths < 2 && argc > 0 && strcmp(argv[0], "--help") != 0 && strcmp(argv[0], "-h") != 0) {
        dg_cli_error("ssim: the two PNG files come first, then the options (dnnguard ssim A.png B.png [--mode "
                     "global|gaussian])");
        return DG_EXIT_BAD_INPUT;
    }
    const dg_opt opts[] = {
        {"mode", DG_OPT_STR, &mode_text, "global (the paper's single window, default) | gaussian (11x11, sigma 1.5)"},
    };
    int rc = dg_cli_parse("ssim A.png B.png", argc, argv, opts, (int)(sizeof opts / sizeof *opts));
    if (rc != 0) return rc > 0 ? DG_EXIT_OK : DG_EXIT_BAD_INPUT;
    dg_ssim_mode mode;
    if (n_paths != 2) {
        dg_cli_error("ssim: two PNG files are needed (dnnguard ssim A.png B.png [--mode global|gaussian])");
        return DG_EXIT_BAD_INPUT;
    }
    if (dg_ssim_parse_mode(mode_text, &mode) != 0) {
        dg_cli_error("ssim: --mode must be global or gaussian, not '%s'", mode_text);
        return DG_EXIT_BAD_INPUT;
    }
    dg_image img[2] = {{0}, {0}};
    char err[512];
    rc = DG_EXIT_BAD_INPUT;
    for (int k = 0; k < 2; k++)
        if (dg_png_read(paths[k], &img[k], 0, err, sizeof err) != 0) {
            dg_cli_error("%s", err);
            goto done;
        } else if (img[k].stored_bits == 16) { /* skimage would compare the 16-bit values themselves */
            dg_cli_error("ssim: %s has 16 bits per sample; ssim compares 8-bit images, and rounding them to 8 bits "
                         "would change the answer: save it with 8", paths[k]);
            goto done;
        }
    if (img[0].w != img[1].w || img[0].h != img[1].h || img[0].channels != img[1].channels) {
        dg_cli_error("ssim: %s is %dx%d with %d channel(s)%s but %s is %dx%d with %d channel(s)%s", paths[0], img[0].w,
                     img[0].h, img[0].channels, dg_png_stored_note(&img[0]), paths[1], img[1].w, img[1].h,
                     img[1].channels, dg_png_stored_note(&img[1]));
        goto done;
    }
    if (!dg_ssim_fits(img[0].h, img[0].w, mode)) {
        dg_cli_error("ssim: %dx%d images are smaller than the %dx%d window of --mode gaussian", img[0].w, img[0].h,
                     DG_SSIM_WINDOW, DG_SSIM_WINDOW);
        goto done;
    }
    double s = dg_ssim_interleaved(img[0].pixels, img[1].pixels, img[0].h, img[0].w, img[0].channels, mode);
    if (isnan(s)) {
        dg_cli_error("ssim: out of memory");
        goto done;
    }
    printf("{\"a\": ");
    dg_json_string(stdout, paths[0]);
    printf(", \"b\": ");
    dg_json_string(stdout, paths[1]);
    printf(", \"mode\": \"%s\", \"width\": %d, \"height\": %d, \"channels\": %d, \"ssim\": %.17g}\n",
           dg_ssim_mode_name(mode), img[0].w, img[0].h, img[0].channels, s);
    rc = DG_EXIT_OK;
done:
    dg_image_free(&img[0]);
    dg_image_free(&img[1]);
    return rc;
}
