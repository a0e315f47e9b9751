"""tests/test_png_pil.py — host/png.c (through tests/tool_png) against PIL: PIL-written files of every mode and
hand-made ones of every colour type, bit depth and Adam7 read as PIL and the documented rules say; what we
write PIL reads as the same pixels in mode L or RGB; bad files refused in one line. Test only; a temp dir."""
import os
import struct
import subprocess
import sys
import tempfile
import warnings
import zlib

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_check import check, done  # noqa: E402

warnings.filterwarnings("ignore", message="Palette images with Transparency")  # PIL's advice, not a fault
TOOL = os.environ.get("DG_TOOL_PNG", "build/tests/tool_png")
TMP = tempfile.mkdtemp(prefix="dg_png_pil_")
RNG = np.random.default_rng(7)


def tmp(name):
    return os.path.join(TMP, name)


def ours(path, want):
    """Our reader: (H, W, C) uint8 array, or the error line."""
    raw = tmp("out.raw")
    r = subprocess.run([TOOL, "dump", path, str(want), raw], capture_output=True, text=True)
    if r.returncode != 0:
        return r.stderr.strip()
    w, h, c = map(int, r.stdout.split())
    return np.fromfile(raw, np.uint8).reshape(h, w, c)


def hwc(a):
    return a[:, :, None] if a.ndim == 2 else a


def to16_rule(v):
    """The documented 16 → 8-bit rule: round(v·255/65535)."""
    return ((v.astype(np.int64) * 255 + 32767) // 65535).astype(np.uint8)


def luma(rgb):
    """PIL's convert("L"): (19595 R + 38470 G + 7471 B + 32768) >> 16."""
    r, g, b = (rgb[..., k].astype(np.int64) for k in range(3))
    return ((19595 * r + 38470 * g + 7471 * b + 32768) >> 16).astype(np.uint8)


def same(got, want, what):
    if isinstance(got, str):
        return check(False, f"{what}: refused: {got}")
    ok = got.shape == want.shape and np.array_equal(got, want)
    detail = "" if ok else f" (shape {got.shape} vs {want.shape}" + (
        f", {int((got != want).sum())} values differ)" if got.shape == want.shape else ")")
    return check(ok, what + detail)


# ---------------------------------------------------------------------------------------------
# 1. PIL writes, we read: every mode PIL saves as PNG

def pil_images():
    h, w = 11, 13
    grey = RNG.integers(0, 256, (h, w), dtype=np.uint8)
    grey[0, :] = np.arange(w) * 21
    rgb = RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)
    alpha = RNG.integers(0, 256, (h, w), dtype=np.uint8)
    pal = Image.fromarray(rgb).quantize(colors=37)
    out = [
        ("1", Image.fromarray(grey > 127), {}),
        ("L", Image.fromarray(grey, "L"), {}),
        ("L tRNS", Image.fromarray(grey, "L"), {"transparency": int(grey[3, 3])}),
        ("LA", Image.fromarray(np.dstack([grey, alpha]), "LA"), {}),
        ("P", pal, {}),
        ("P tRNS", pal, {"transparency": 5}),
        ("P alpha table", pal, {"transparency": bytes(range(0, 255, 7))}),
        ("P 4-bit", Image.fromarray(rgb).quantize(colors=16), {"bits": 4}),
        ("RGB", Image.fromarray(rgb, "RGB"), {}),
        ("RGB tRNS", Image.fromarray(rgb, "RGB"), {"transparency": tuple(int(x) for x in rgb[2, 2])}),
        ("RGBA", Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), {}),
        ("RGB optimize", Image.fromarray(rgb, "RGB"), {"optimize": True}),
        ("L level 0", Image.fromarray(grey, "L"), {"compress_level": 0}),
    ]
    # big enough for several IDAT chunks
    big = RNG.integers(0, 256, (300, 257, 3), dtype=np.uint8)
    out.append(("RGB 300x257 noise", Image.fromarray(big, "RGB"), {"compress_level": 1}))
    return out


def test_pil_written():
    for name, im, kw in pil_images():
        path = tmp("pil.png")
        im.save(path, "PNG", **kw)
        back = Image.open(path)
        back.load()
        stored_grey = back.mode in ("1", "L", "LA", "I", "I;16")
        L = np.array(back.convert("L"))
        RGB = np.array(back.convert("RGB"))
        same(ours(path, 1), hwc(L), f"PIL {name} ({back.mode}) as grey = PIL convert('L')")
        same(ours(path, 3), RGB, f"PIL {name} ({back.mode}) as RGB = PIL convert('RGB')")
        same(ours(path, 0), hwc(L) if stored_grey else RGB, f"PIL {name} as stored: {1 if stored_grey else 3} channels")

    # 16-bit grey (PIL's I;16 → "I" on reading): every value, by the documented rule
    v = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    v[0, :4] = [0, 257, 255, 0xFFFF]  # 255 → 1 here; the high byte would give 0
    path = tmp("i16.png")
    Image.fromarray(v, "I;16").save(path)
    back = np.array(Image.open(path))
    check(np.array_equal(back, v), "PIL reads its own I;16 file back (16-bit oracle)")
    exp = to16_rule(back)
    same(ours(path, 0), hwc(exp), "PIL I;16: round(v*255/65535) for all 65536 values")
    same(ours(path, 3), np.dstack([exp] * 3), "PIL I;16 as RGB: replicated")
    g = ours(path, 0)
    if not isinstance(g, str):
        check(list(g[0, :4, 0]) == [0, 1, 1, 255],
              f"16-bit samples 0, 257, 255, 65535 -> {list(g[0, :4, 0])} (want 0 1 1 255)")

    # RGB → L over many colours, PIL as the oracle
    rgb = RNG.integers(0, 256, (512, 512, 3), dtype=np.uint8)
    rgb[0, :256] = np.arange(256)[:, None]
    rgb[1, :256, 0] = np.arange(256)
    rgb[2, :256, 1] = np.arange(256)
    rgb[3, :256, 2] = np.arange(256)
    path = tmp("rgbmany.png")
    Image.fromarray(rgb, "RGB").save(path, compress_level=1)
    pil_l = np.array(Image.open(path).convert("L"))
    check(np.array_equal(pil_l, luma(rgb)), "PIL's convert('L') is (19595 R + 38470 G + 7471 B + 32768) >> 16")
    same(ours(path, 1), hwc(pil_l), "512x512 RGB as grey = PIL convert('L')")


# ---------------------------------------------------------------------------------------------
# 2. hand-made files: every colour type, bit depth and interlacing

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def pack_rows(a, depth):
    """(h, w, n) samples → filter byte 0 + packed row, per row."""
    out = bytearray()
    for row in a:
        vals = row.reshape(-1).astype(np.int64)
        if depth == 16:
            b = vals.astype(">u2").tobytes()
        elif depth == 8:
            b = vals.astype(np.uint8).tobytes()
        else:
            per = 8 // depth
            vals = np.concatenate([vals, np.zeros((-len(vals)) % per, np.int64)]).reshape(-1, per)
            shifts = 8 - depth * (np.arange(per) + 1)
            b = (vals << shifts).sum(axis=1).astype(np.uint8).tobytes()
        out += b"\0" + b
    return bytes(out)


def encode(samples, ctype, depth, interlace, plte=None, trns=None):
    h, w = samples.shape[:2]
    if interlace:
        raw = b"".join(pack_rows(samples[y0::dy, x0::dx], depth)
                       for x0, y0, dx, dy in ADAM7 if samples[y0::dy, x0::dx].size)
    else:
        raw = pack_rows(samples, depth)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, int(interlace)))
    if plte is not None:
        png += chunk(b"PLTE", plte.astype(np.uint8).tobytes())
    if trns is not None:
        png += chunk(b"tRNS", trns)
    z = zlib.compress(raw, 9)
    half = len(z) // 2  # two IDAT chunks: the reader must join them
    return png + chunk(b"IDAT", z[:half]) + chunk(b"IDAT", z[half:]) + chunk(b"IEND", b"")


def expected(samples, ctype, depth, plte):
    """Our documented rules: (grey-or-RGB 8-bit array, stored channels)."""
    s = samples.astype(np.int64)
    if ctype == 3:
        rgb = plte[s[..., 0]].astype(np.uint8)
        return rgb, 3
    if depth == 16:
        v = to16_rule(s)
    elif depth < 8:
        v = (s * 255 // ((1 << depth) - 1)).astype(np.uint8)
    else:
        v = s.astype(np.uint8)
    if ctype in (0, 4):
        return v[..., :1], 1
    return v[..., :3], 3


def test_hand_made():
    kinds = [(0, d) for d in (1, 2, 4, 8, 16)] + [(2, 8), (2, 16), (3, 1), (3, 2), (3, 4), (3, 8),
                                                  (4, 8), (4, 16), (6, 8), (6, 16)]
    nch = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
    for (h, w) in ((1, 1), (3, 5), (11, 13), (9, 33)):
        for ctype, depth in kinds:
            top = (1 << depth) - 1
            samples = RNG.integers(0, top + 1, (h, w, nch[ctype]), dtype=np.int64)
            samples.reshape(-1)[: min(samples.size, top + 1)] = np.arange(min(samples.size, top + 1))
            plte = RNG.integers(0, 256, (top + 1, 3)) if ctype == 3 else None
            trns = bytes(RNG.integers(0, 256, top + 1).astype(np.uint8)) if ctype == 3 and depth < 8 else None
            exp, stored = expected(samples, ctype, depth, plte)
            grey = exp if stored == 1 else luma(exp)[..., None]
            rgb = np.repeat(exp, 3, axis=2) if stored == 1 else exp
            for interlace in (False, True):
                what = f"{w}x{h} colour type {ctype}, {depth}-bit{', Adam7' if interlace else ''}"
                path = tmp("hand.png")
                with open(path, "wb") as f:
                    f.write(encode(samples, ctype, depth, interlace, plte, trns))
                same(ours(path, 0), exp, f"{what}: as stored")
                same(ours(path, 1), grey, f"{what}: as grey")
                same(ours(path, 3), rgb, f"{what}: as RGB")
                pim = Image.open(path)
                if depth <= 8:
                    check(np.array_equal(np.array(pim.convert("RGB")), rgb), f"{what}: PIL decodes the same RGB")
                    check(np.array_equal(hwc(np.array(pim.convert("L"))), grey), f"{what}: PIL decodes the same grey")
                elif ctype == 0:  # PIL: mode "I" with the raw values, to which the rule applies
                    check(np.array_equal(hwc(to16_rule(np.array(pim))), grey), f"{what}: PIL's 16-bit samples agree")
                # (16-bit colour: PIL keeps only the high byte, so it is no oracle for the rounding)


# ---------------------------------------------------------------------------------------------
# 3. we write, PIL reads

def test_we_write():
    for (h, w) in ((1, 1), (5, 3), (3, 257), (64, 64)):
        for c in (1, 3):
            a = RNG.integers(0, 256, (h, w, c), dtype=np.uint8)
            a.reshape(-1)[: min(a.size, 256)] = np.arange(min(a.size, 256))
            a.tofile(tmp("in.raw"))
            path = tmp("ours.png")
            r = subprocess.run([TOOL, "write", tmp("in.raw"), str(w), str(h), str(c), path], capture_output=True,
                               text=True)
            if not check(r.returncode == 0, f"write {w}x{h}x{c}: {r.stderr.strip()}"):
                continue
            im = Image.open(path)
            im.load()
            mode = "L" if c == 1 else "RGB"
            check(im.mode == mode and im.size == (w, h), f"PIL reads our {w}x{h}x{c} as {im.mode} {im.size}")
            check(np.array_equal(hwc(np.array(im)), a), f"PIL reads our {w}x{h}x{c} pixels exactly")
            same(ours(path, 0), a, f"our {w}x{h}x{c} reads back bit for bit")
            check(set(os.listdir(TMP)) <= {"in.raw", "ours.png", "out.raw", "pil.png", "i16.png", "rgbmany.png",
                                           "hand.png"}, "no temporary file left beside the output")
    # convert: PIL palette file → ours (RGB and grey) → PIL
    src = tmp("pil.png")
    pal = Image.fromarray(RNG.integers(0, 256, (7, 9, 3), dtype=np.uint8)).quantize(colors=20)
    pal.save(src, transparency=3)
    for want, mode in ((0, "RGB"), (1, "L"), (3, "RGB")):
        dst = tmp("ours.png")
        r = subprocess.run([TOOL, "convert", src, dst, str(want)], capture_output=True, text=True)
        if check(r.returncode == 0, f"convert palette file to {want} channels: {r.stderr.strip()}"):
            im = Image.open(dst)
            check(im.mode == mode and np.array_equal(np.array(im), np.array(Image.open(src).convert(mode))),
                  f"palette → ours ({want}) → PIL: mode {im.mode}, the pixels of PIL's convert('{mode}')")


# ---------------------------------------------------------------------------------------------
# 4. bad files: one line naming the file; PIL refuses them too

def test_bad():
    src = tmp("pil.png")
    Image.fromarray(RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(src)
    good = open(src, "rb").read()
    cases = [("empty", b""), ("signature only", good[:8]), ("half", good[: len(good) // 2]),
             ("no IEND", good[:-12]), ("IEND CRC cut", good[:-1]), ("bad signature", b"\x89PNX" + good[4:]),
             ("IHDR CRC", good[:29] + bytes([good[29] ^ 1]) + good[30:]),
             ("100000x100000", good[:16] + struct.pack(">II", 100000, 100000) + good[24:29] +
              struct.pack(">I", zlib.crc32(b"IHDR" + struct.pack(">II", 100000, 100000) + good[24:29]) & 0xFFFFFFFF) +
              good[33:])]
    for name, data in cases:
        path = tmp("bad.png")
        with open(path, "wb") as f:
            f.write(data)
        r = subprocess.run([TOOL, "dump", path, "0", tmp("out.raw")], capture_output=True, text=True)
        lines = r.stderr.strip().splitlines()
        check(r.returncode == 1 and len(lines) == 1 and lines[0].startswith(path + ": "),
              f"bad file ({name}) -> exit {r.returncode}, {r.stderr.strip()!r}")
        try:
            Image.open(path).load()
            pil_ok = True
        except Exception:
            pil_ok = False
        if name not in ("no IEND", "IEND CRC cut"):  # PIL stops at the image's end and never checks IEND
            check(not pil_ok, f"PIL refuses it too ({name})")


test_pil_written()
test_hand_made()
test_we_write()
test_bad()
for f in os.listdir(TMP):
    os.unlink(tmp(f))
os.rmdir(TMP)
done()
