"""bench/folder_load.py — reading a folder of PNG images (folder:DIR, host/data_folder.c): the
whole `dnnguard info --data folder:DIR` process (start, walk, decode every image into one buffer,
statistics, digests) beside torchvision's ImageFolder in this process decoding every sample with
its default loader (PIL, convert("RGB")) into a numpy array, single-threaded as dnnguard is. The
tree: the 10000 CIFAR-10 test images as 32×32 RGB PNGs in ten class folders (written once by PIL),
and the 10000 MNIST test digits as 28×28 grey PNGs. Best of --reps runs; one JSON line per tree and
a markdown table. Run with Debian's /usr/bin/python3 (torch, torchvision, PIL, numpy); not a test.

    /usr/bin/python3 bench/folder_load.py [--dnnguard build/dnnguard] [--reps 3]
"""
import argparse
import gzip
import json
import os
import shutil
import subprocess
import tempfile

import numpy as np
from PIL import Image
from torchvision.datasets import ImageFolder

from best_of import best  # bench/ is the script's folder, on sys.path

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")


def write_trees(root):
    cifar = np.frombuffer(gzip.open(os.path.join(SHARED, "cifar10", "test_batch.bin.gz")).read(), np.uint8)
    cifar = cifar.reshape(-1, 3073)
    names = open(os.path.join(SHARED, "cifar10", "batches.meta.txt")).read().split()
    for i, rec in enumerate(cifar):
        d = os.path.join(root, "cifar", "train", names[rec[0]])
        os.makedirs(d, exist_ok=True)
        Image.fromarray(rec[1:].reshape(3, 32, 32).transpose(1, 2, 0)).save(os.path.join(d, f"{i:05d}.png"))
    raw = gzip.open(os.path.join(SHARED, "mnist", "t10k-images-idx3-ubyte.gz")).read()
    images = np.frombuffer(raw[16:], np.uint8).reshape(-1, 28, 28)
    labels = gzip.open(os.path.join(SHARED, "mnist", "t10k-labels-idx1-ubyte.gz")).read()[8:]
    for i, (img, lab) in enumerate(zip(images, labels)):
        d = os.path.join(root, "mnist", "train", str(lab))
        os.makedirs(d, exist_ok=True)
        Image.fromarray(img).save(os.path.join(d, f"{i:05d}.png"))


def torch_read(folder, mode):
    ds = ImageFolder(folder, loader=lambda p: Image.open(p).convert(mode))
    out = np.empty((len(ds),) + np.asarray(ds[0][0]).shape, np.uint8)
    for i in range(len(ds)):
        out[i] = np.asarray(ds[i][0])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dnnguard", default="build/dnnguard")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="dg-folderload-")
    write_trees(tmp)
    rows = []
    for tree, mode in (("cifar", "RGB"), ("mnist", "L")):
        root = os.path.join(tmp, tree)
        spec = "folder:" + root
        info = lambda: subprocess.run([a.dnnguard, "info", "--data", spec, "--json"], check=True, capture_output=True)
        out = json.loads(info().stdout)
        dg = best(info, a.reps)
        tv = best(lambda: torch_read(os.path.join(root, "train"), mode), a.reps)
        row = {"tree": tree, "images": out["images"], "shape": out["shape"], "dnnguard_s": round(dg, 3),
               "torchvision_s": round(tv, 3), "torchvision_over_dnnguard": round(tv / dg, 2)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| tree | images | shape | dnnguard info --data (s) | ImageFolder + PIL (s) | ratio |")
    print("|---|---:|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['tree']} | {r['images']} | {'×'.join(map(str, r['shape']))} | {r['dnnguard_s']:.3f} | "
              f"{r['torchvision_s']:.3f} | **{r['torchvision_over_dnnguard']:.2f}** |")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
