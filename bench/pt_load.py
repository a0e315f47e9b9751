"""bench/pt_load.py — reading a torch.save file: `dnnguard info --model FILE.pt` (host/torch_pt.c,
a whole process: start, read, unpickle, tensors read in place or copied, list) beside torch.load of
the same file in this process, and beside `dnnguard info` of the same weights as safetensors; and
writing one: `dnnguard attack prune --rate 0` from the safetensors file to OUT.pt
(host/torch_pt_write.c; a whole process that also reads, prunes nothing, and fsyncs) beside the
same to OUT.safetensors, and beside torch.save in this process (no fsync). torchvision's resnet18
and resnet50 state dicts (random weights). Best of --reps runs each; prints one JSON line per model
and two markdown tables. Run with Debian's /usr/bin/python3 (torch, torchvision, numpy); not a
test.

    /usr/bin/python3 bench/pt_load.py [--dnnguard build/dnnguard] [--reps 5]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import st_io  # noqa: E402
from best_of import best  # noqa: E402  (bench/ is the script's folder, on sys.path)


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
        out_pt, out_st = os.path.join(tmp, "out.pt"), os.path.join(tmp, "out.safetensors")
        prune = lambda out: subprocess.run([a.dnnguard, "attack", "prune", "--model", st, "--rate", "0", "--out", out],
                                           check=True, capture_output=True)
        row["torch_save_s"] = best(lambda: torch.save(sd, os.path.join(tmp, "torch.pt")), a.reps)
        row["dnnguard_write_pt_s"] = best(lambda: prune(out_pt), a.reps)
        row["dnnguard_write_safetensors_s"] = best(lambda: prune(out_st), a.reps)
        back = torch.load(out_pt, weights_only=True)
        row["written_pt_equal"] = sorted(back) == sorted(sd) and all(torch.equal(back[k], sd[k]) for k in sd)
        for f in (out_pt, out_st, os.path.join(tmp, "torch.pt")):
            os.remove(f)
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
    print("\n| model | torch.save (in process) | dnnguard prune → .pt | dnnguard prune → safetensors |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['torch_save_s'] * 1e3:.0f} ms | {r['dnnguard_write_pt_s'] * 1e3:.0f} ms | "
              f"{r['dnnguard_write_safetensors_s'] * 1e3:.0f} ms |")


if __name__ == "__main__":
    main()
