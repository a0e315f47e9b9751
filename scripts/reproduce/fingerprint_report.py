"""scripts/reproduce/fingerprint_report.py OUT — the report of activeguard-fingerprints.sh: reads
the JSON files the script left in OUT and writes OUT/results.json, OUT/results.md (Tables II and
IV and Fig. 5 beside the paper's figures) and OUT/fingerprints.png (source, fingerprint and the
difference amplified, as the paper's Fig. 3). Needs only the standard library, numpy and PIL."""
import gzip
import json
import os
import sys

import numpy as np
from PIL import Image

PAPER = {
    "table2": "96-100% of fresh fingerprints authenticate on MNIST (99-100% on CIFAR-10); the target is 100%",
    "table4": "forged fingerprints authenticate at most 0.10% of the time",
    "fig5": "99.15% for authorised users, 8.92% for unauthorised ones (LeNet-5, MNIST)",
}


def binary_text(b):
    """settings.json's "binary": `dnnguard version --json` (a dict), or the older --version string"""
    return b if isinstance(b, str) else f"dnnguard {b['version']} ({b['cpu']}; CUDA: {b['cuda']})"


def load(out, name):
    with open(os.path.join(out, name)) as f:
        return json.load(f)


def source_images(registry):
    """The test (or train) images the registry's sources index, as uint8 [n, c, h, w]."""
    kind, _, folder = registry["data"].partition(":")
    c, h, w = registry["shape"]
    train = registry["split"] == "train"
    if kind in ("mnist", "fashion-mnist"):
        folder = folder or "/usr/share/datasets/fashion-mnist"
        name = "train-images-idx3-ubyte" if train else "t10k-images-idx3-ubyte"
        path = os.path.join(folder, name)
        raw = gzip.open(path + ".gz").read() if os.path.exists(path + ".gz") else open(path, "rb").read()
        return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 1, h, w)
    if kind == "cifar10" and not train:
        path = os.path.join(folder, "test_batch.bin")
        raw = gzip.open(path + ".gz").read() if os.path.exists(path + ".gz") else open(path, "rb").read()
        return np.frombuffer(raw, np.uint8).reshape(-1, 3073)[:, 1:].reshape(-1, 3, 32, 32)
    return None


def sheet(out, registry, path):
    """Three rows (source, fingerprint, |difference| × 5) × one column per class (its first user)."""
    sources = source_images(registry)
    if sources is None:
        return False
    users, seen = [], set()
    for u in registry["users"]:
        if u["class"] not in seen:
            seen.add(u["class"])
            users.append(u)
    c, h, w = registry["shape"]
    scale, pad = 3, 4
    W = len(users) * (w * scale + pad) + pad
    H = 3 * (h * scale + pad) + pad
    canvas = Image.new("RGB" if c == 3 else "L", (W, H), 255)
    for col, u in enumerate(users):
        src = sources[u["source_index"]]
        fp = np.asarray(Image.open(os.path.join(out, "fps", u["file"])))
        fp = fp[None] if fp.ndim == 2 else fp.transpose(2, 0, 1)
        diff = np.clip(np.abs(fp.astype(int) - src.astype(int)) * 5, 0, 255).astype(np.uint8)
        for row, img in enumerate([src, fp, diff]):
            tile = Image.fromarray(img[0] if c == 1 else img.transpose(1, 2, 0))
            tile = tile.resize((w * scale, h * scale), Image.NEAREST)
            canvas.paste(tile, (pad + col * (w * scale + pad), pad + row * (h * scale + pad)))
    canvas.save(path)
    return True


def pct(x):
    return f"{100 * x:.2f}%"


def main():
    out = sys.argv[1]
    s = load(out, "settings.json")
    registry = load(out, "fps/registry.json")
    issue = load(out, "issue.json")
    auth = load(out, "auth.json")
    t2 = {k: load(out, f"table2-{k}.json") for k in ("paper", "tuned")}
    forge = {m: load(out, f"forge-{m}.json") for m in ("clean", "fgsm", "cw")}
    none, user = load(out, "predict-none.json"), load(out, "predict-user07.json")
    results = {"settings": s, "paper": PAPER, "issue": issue, "auth": auth,
               "table2": {k: {kk: v for kk, v in t.items()} for k, t in t2.items()},
               "table4": forge, "fig5": {"authorised": user["accuracy"], "unauthorised": none["accuracy"]}}
    json.dump(results, open(os.path.join(out, "results.json"), "w"), indent=1)

    lines = ["# ActiveGuard users' fingerprints: LeNet-5 on MNIST", "",
             f"{binary_text(s['binary'])} on {s['host']}, {s['date']}. Confidences {s['confidences']}, ε = {s['eps']}; "
             f"{issue['issued']} of {issue['users']} users issued in {issue['attempts']} attempts "
             f"({issue['seconds']:.1f} s, mean L2 {issue['mean_l2']:.3f}); {auth['authenticated_strict']} of "
             f"{auth['issued_pngs']} issued PNGs pass `fp auth --strict`. Capacity N = K·(z2 − z1)/(2ε) = "
             f"{issue['capacity']:.0f}.", "",
             "## Table II: authentication success of fresh fingerprints", "",
             f"Paper: {PAPER['table2']}. Here {s['per_user']} fresh fingerprints per user, each from a new source "
             f"image, one attempt each.", "",
             "| generator settings | fingerprints | authenticated | rate | lowest user | seconds |",
             "|---|---|---|---|---|---|"]
    for k, label in (("paper", "the paper's (lr 0.005, α in (0, 40) from 20)"), ("tuned", f"tuned (`{s['tuned']}`)")):
        t = t2[k]
        lines.append(f"| {label} | {t['fingerprints']} | {t['authenticated']} | {pct(t['rate'])} | "
                     f"{pct(t['min_user_rate'])} | {t['seconds']:.0f} |")
    lines += ["", "Per user, tuned settings:", "", "| user | class | confidence | rate | mean L2 |", "|---|---|---|---|---|"]
    for u in t2["tuned"]["users"]:
        lines.append(f"| {u['id']} | {u['class']} | {u['confidence']} | {pct(u['rate'])} | {u['mean_l2']:.3f} |")
    lines += ["", "## Table IV: forged fingerprints", "", f"Paper: {PAPER['table4']}.", "",
              "| fakes | tried | fakes made | authenticated (rule) | rate | strict mode |", "|---|---|---|---|---|---|"]
    for m, label in (("clean", "clean test images"), ("fgsm", f"FGSM, ε = {forge['fgsm'].get('fgsm_eps', '?')}"),
                     ("cw", "untargeted C&W (1 search step, 300 iterations)")):
        f = forge[m]
        lines.append(f"| {label} | {f['tried']} | {f['fakes']} | {f['authenticated']} | {pct(f['rate'])} | "
                     f"{pct(f['strict_rate'])} |")
    lines += ["", "## Fig. 5: the control layer", "", f"Paper: {PAPER['fig5']}.", "",
              "| user | answers | test accuracy |", "|---|---|---|",
              f"| authorised (user 7's fingerprint) | the model's | {pct(user['accuracy'])} |",
              f"| unauthorised (no fingerprint) | random, seeded | {pct(none['accuracy'])} |", ""]
    if sheet(out, registry, os.path.join(out, "fingerprints.png")):
        lines += ["Sources (top), fingerprints (middle) and their difference × 5 (bottom), one user per class:", "",
                  "![fingerprints](fingerprints.png)", ""]
    open(os.path.join(out, "results.md"), "w").write("\n".join(lines))


if __name__ == "__main__":
    main()
