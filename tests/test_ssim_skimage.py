"""tests/test_ssim_skimage.py — `dnnguard ssim` against scikit-image and against the global formula
written again here in numpy: the windowed form must equal skimage.metrics.structural_similarity with
gaussian_weights=True, sigma=1.5, use_sample_covariance=False (data_range 255 on uint8) to 1e-9 on
random, structured, constant and colour images of several sizes (11x11, the smallest the window
allows, to 224x224); the global form must equal one window over the whole image (c1 = 1e-4,
c2 = 9e-4 on [0, 1] values) to 1e-12; an image against itself gives exactly 1 in both forms. Bad
input (different sizes or channels, too small for the window, a corrupt PNG, one file, an unknown
mode): exit 2 and one line. Needs $DNNGUARD, numpy, PIL and skimage (Debian's python3-skimage)."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image
from skimage.metrics import structural_similarity

DNNGUARD = os.environ.get("DNNGUARD", "build/dnnguard")
failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL", what)


def dg_ssim(a_path, b_path, mode):
    p = subprocess.run([DNNGUARD, "ssim", a_path, b_path, "--mode", mode], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def global_ssim(a, b):
    x, y = a.astype(np.float64) / 255, b.astype(np.float64) / 255
    mx, my = x.mean(), y.mean()
    vx, vy, vxy = ((x - mx) ** 2).mean(), ((y - my) ** 2).mean(), ((x - mx) * (y - my)).mean()
    return (2 * mx * my + 1e-4) * (2 * vxy + 9e-4) / ((mx * mx + my * my + 1e-4) * (vx + vy + 9e-4))


def skimage_ssim(a, b):
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    if a.ndim == 3:
        return structural_similarity(a, b, channel_axis=-1, **kw)
    return structural_similarity(a, b, **kw)


def pairs(rng):
    """(name, a, b) uint8 image pairs: random, structured and related, constant, colour"""
    for h, w in [(11, 11), (28, 28), (32, 32), (37, 23), (64, 48), (224, 224)]:
        a = rng.integers(0, 256, (h, w), dtype=np.uint8)
        yield f"random {h}x{w}", a, rng.integers(0, 256, (h, w), dtype=np.uint8)
        noisy = np.clip(a.astype(int) + rng.integers(-30, 31, (h, w)), 0, 255).astype(np.uint8)
        yield f"noisy copy {h}x{w}", a, noisy
        yy, xx = np.mgrid[0:h, 0:w]
        blob = (255 * np.exp(-((yy - h / 2) ** 2 + (xx - w / 3) ** 2) / (h * w / 20))).astype(np.uint8)
        sparse = np.where(rng.random((h, w)) < 0.9, 0, rng.integers(0, 256, (h, w))).astype(np.uint8)
        yield f"blob vs sparse {h}x{w}", blob, sparse
    yield "constant vs constant", np.full((32, 32), 7, np.uint8), np.full((32, 32), 200, np.uint8)
    yield "zeros vs zeros", np.zeros((32, 32), np.uint8), np.zeros((32, 32), np.uint8)
    yield "zeros vs random", np.zeros((32, 32), np.uint8), rng.integers(0, 256, (32, 32), dtype=np.uint8)
    c = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    yield "colour 32x32", c, np.clip(c.astype(int) + rng.integers(-40, 41, c.shape), 0, 255).astype(np.uint8)


def main():
    rng = np.random.default_rng(11)
    with tempfile.TemporaryDirectory() as tmp:
        worst_g = worst_w = 0.0
        n = 0
        for name, a, b in pairs(rng):
            pa, pb = os.path.join(tmp, "a.png"), os.path.join(tmp, "b.png")
            Image.fromarray(a).save(pa)
            Image.fromarray(b).save(pb)
            for mode in ("global", "gaussian"):
                rc, out, err = dg_ssim(pa, pb, mode)
                check(rc == 0, f"{name} {mode}: exit {rc} {err.strip()}")
                if rc != 0:
                    continue
                got = json.loads(out)
                check(got["mode"] == mode and got["width"] == a.shape[1] and got["height"] == a.shape[0],
                      f"{name}: JSON fields {got}")
                if mode == "global":
                    want = np.mean([global_ssim(a[..., k], b[..., k]) for k in range(3)]) if a.ndim == 3 \
                        else global_ssim(a, b)
                    worst_g = max(worst_g, abs(got["ssim"] - want))
                    check(abs(got["ssim"] - want) < 1e-12, f"{name} global: {got['ssim']} vs {want}")
                else:
                    want = skimage_ssim(a, b)
                    worst_w = max(worst_w, abs(got["ssim"] - want))
                    check(abs(got["ssim"] - want) < 1e-9, f"{name} gaussian: {got['ssim']} vs skimage {want}")
                n += 1
            for mode in ("global", "gaussian"):  # an image against itself: exactly 1
                rc, out, _ = dg_ssim(pa, pa, mode)
                check(rc == 0 and json.loads(out)["ssim"] == 1.0, f"{name} {mode}: self-SSIM {out.strip()}")
        print(f"{n} comparisons: global worst |diff| {worst_g:.2e}, gaussian vs skimage worst |diff| {worst_w:.2e}")

        # bad input: exit 2, one line on stderr
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(os.path.join(tmp, "g32.png"))
        Image.fromarray(np.zeros((28, 32), np.uint8)).save(os.path.join(tmp, "g28.png"))
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(os.path.join(tmp, "c32.png"))
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(os.path.join(tmp, "g8.png"))
        Image.fromarray(np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 60).save(os.path.join(tmp, "g32x16.png"))
        with open(os.path.join(tmp, "g32.png"), "rb") as f:
            data = bytearray(f.read())
        data[40] ^= 0xFF
        with open(os.path.join(tmp, "bad.png"), "wb") as f:
            f.write(data)
        t = lambda name: os.path.join(tmp, name)
        for args, why in [([t("g32.png"), t("g28.png")], "sizes differ"),
                          ([t("g32.png"), t("c32.png")], "channels differ"),
                          ([t("g8.png"), t("g8.png"), "--mode", "gaussian"], "smaller than the window"),
                          ([t("g32.png"), t("bad.png")], "corrupt PNG"),
                          ([t("g32.png"), t("g32x16.png")], "16 bits per sample"),
                          ([t("g32.png"), t("missing.png")], "missing file"),
                          ([t("g32.png")], "one file"),
                          ([t("g32.png"), t("g32.png"), "--mode", "box"], "unknown mode"),
                          (["--mode", "gaussian", t("g32.png"), t("g32.png")], "come first")]:
            p = subprocess.run([DNNGUARD, "ssim"] + args, capture_output=True, text=True)
            lines = [line for line in p.stderr.splitlines() if line.strip()]
            check(p.returncode == 2 and len(lines) == 1 and not p.stdout and
                  (why not in ("16 bits per sample", "come first") or why in p.stderr),
                  f"ssim {why}: exit {p.returncode}, stderr {p.stderr!r}")
        p = subprocess.run([DNNGUARD, "ssim", t("g8.png"), t("g8.png")], capture_output=True, text=True)
        check(p.returncode == 0 and json.loads(p.stdout)["ssim"] == 1.0, "8x8 global SSIM works")
    print(f"test_ssim_skimage: {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
