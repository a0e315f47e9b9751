"""bench/pt_load.py — reading a torch.save file: `dnnguard info --model FILE.pt` (host/torch_pt.c,
a whole process: start, read, unpickle, copy every tensor contiguous, list) beside torch.load of
the same file in this process, and beside `dnnguard info` of the same weights as safetensors.
torchvision's resnet18 and resnet50 state dicts (random weights). Best of --reps runs each; prints
one JSON line per model and a markdown table. Run with Debian's /usr/bin/python3 (torch,
torchvision, numpy); not a test.

    /usr/bin/python3 bench/pt_load.py [--dnnguard build/dnnguard] [--reps 5]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import st_io  # noqa: E402


def best(fn, reps):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dnnguard", default="build/dnnguard")
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="dg-ptload-")
    rows = []
    for name in ("resnet18", "resnet50"):
        sd = getattr(torchvision.models, name)().state_dict()
        pt, st = os.path.join(tmp, name + ".pt"), os.path.join(tmp, name + ".safetensors")
        torch.save(sd, pt)
        st_io.write(st, {k: v for k, v in sd.items()})
        info = lambda path: subprocess.run([a.dnnguard, "info", "--model", path, "--json"], check=True,
                                           capture_output=True)
        row = {"model": name, "tensors": len(sd), "mib": round(os.path.getsize(pt) / 2**20, 1),
               "torch_load_s": best(lambda: torch.load(pt), a.reps), "dnnguard_pt_s": best(lambda: info(pt), a.reps),
               "dnnguard_safetensors_s": best(lambda: info(st), a.reps)}
        row["ratio_vs_torch_load"] = round(row["torch_load_s"] / row["dnnguard_pt_s"], 2)
        print(json.dumps(row), flush=True)
        rows.append(row)
        os.remove(pt)
        os.remove(st)
    os.rmdir(tmp)
    print("\n| model | tensors | MiB | torch.load | dnnguard info (.pt) | dnnguard info (safetensors) | torch.load / dnnguard .pt |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['tensors']} | {r['mib']} | {r['torch_load_s'] * 1e3:.0f} ms | "
              f"{r['dnnguard_pt_s'] * 1e3:.0f} ms | {r['dnnguard_safetensors_s'] * 1e3:.0f} ms | "
              f"{r['ratio_vs_torch_load']}× |")


if __name__ == "__main__":
    main()
