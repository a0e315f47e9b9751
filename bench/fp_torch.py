#!/usr/bin/python3
"""bench/fp_torch.py — the PyTorch side of bench/fp.sh: ActiveGuard's fingerprint generator (Carlini–Wagner
L2 with the KL confidence term, a whole batch of (class, confidence) targets at once) written again in
PyTorch from the formulas, not from dnnguard's code, on the model and the source images of a registry
written by `dnnguard fp issue`. Run it with Debian's /usr/bin/python3 (torch 1.13). Prints JSON lines.

  fp_torch.py --registry R --model M [--data DIR] [--threads T] time --iters N [--repeats 3]
      N Adam iterations (forward + backward + Adam step of the whole batch) at the first α, no early
      stop and no success test that could end the loop: the fixed amount of work timed against
      `dnnguard fp issue --search-steps 1 --iters N --retries 0 --margin 1e-6`.
  fp_torch.py --registry R --model M [--data DIR] [--threads T] issue [--search-steps 6] [--iters 1000] [--margin m]
      the whole generator with dnnguard's defaults (binary search of α, C&W's early abort, every
      candidate judged on its 8-bit image) — a correctness sanity check, not a timing: how many of
      the users get an 8-bit image with argmax t and |p_t − c| < margin.

Users: user i gets class fingerprint_classes[i // T] and confidence confidences[i % T] (T confidences),
as `fp issue` numbers them. Source images: the registry lists users[].source_index only for the users
it issued, so the sources are also chosen again here the way `fp issue` chooses them (seeded SplitMix64
order over the split, an image of another class that the model gets right, none twice); every
source the registry lists must agree with that, and then the recomputed ones fill the gaps.
"""
import argparse
import gzip
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
import st_io  # noqa: E402
import torch_nets  # noqa: E402

M64 = (1 << 64) - 1


# ---- the sources, as `fp issue` picks them (kernels/math/rng.h: counter-based SplitMix64) ----
def mix64(z):
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def pick_sources(targets, labels, pred, seed):
    stream = mix64(seed ^ mix64(0x50A7CE))
    n, used, cursor, out = len(labels), np.zeros(len(labels), bool), 0, []
    for t in targets:
        src = -1
        for _ in range(4 * n):
            i = mix64((stream + mix64(cursor)) & M64) % n
            cursor += 1
            if used[i] or labels[i] == t or pred[i] != labels[i]:
                continue
            used[i] = True
            src = int(i)
            break
        out.append(src)
    return out


def read_idx(path, header):
    with (gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")) as f:
        f.read(header)
        return np.frombuffer(f.read(), np.uint8)


def find(folder, name):
    for p in (os.path.join(folder, name), os.path.join(folder, name + ".gz")):
        if os.path.exists(p):
            return p
    raise SystemExit(f"fp_torch.py: {folder}: no {name}[.gz]")


class Setup:
    """Model, normalisation, the users' targets and their source images, from a registry."""

    def __init__(self, a):
        reg = json.load(open(a.registry))
        if reg.get("split", "test") != "test":
            raise SystemExit("fp_torch.py: only registries issued from the test split are supported")
        kind, _, where = reg["data"].partition(":")
        folder = a.data or where
        if kind not in ("mnist", "fashion-mnist") or not folder:
            raise SystemExit(f"fp_torch.py: data set '{reg['data']}': give the IDX folder with --data")
        c, h, w = reg["shape"]
        self.k = reg["classes"]
        self.margin = reg["margin"]
        self.mean = torch.tensor(reg["mean"], dtype=torch.float32).view(1, c, 1, 1)
        self.std = torch.tensor(reg["std"], dtype=torch.float32).view(1, c, 1, 1)
        # the 8-bit pixel → input map of kernels/math/pixel.h: byte·1/(255·std) + (−mean/std), in float32
        self.scale = (1.0 / (255.0 * self.std.double())).float()
        self.shift = (-self.mean.double() / self.std.double()).float()

        self.model = torch_nets.build(reg["net"], self.k)
        state = {name: torch.from_numpy(v) for name, v in st_io.read(a.model).items()}
        self.model.load_state_dict(state, strict=False)  # extra entries (e.g. a checkpoint's) are ignored
        missing = set(self.model.state_dict()) - set(state)
        if missing:
            raise SystemExit(f"fp_torch.py: {a.model}: missing {sorted(missing)[:4]}")
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)  # frozen, as dnnguard's generator runs it: gradients to the input only

        images = read_idx(find(folder, "t10k-images-idx3-ubyte"), 16).reshape(-1, c, h, w)
        labels = read_idx(find(folder, "t10k-labels-idx1-ubyte"), 8)
        with torch.no_grad():
            u = torch.from_numpy(images.astype(np.float32)) * self.scale + self.shift
            pred = torch.cat([self.model(u[i:i + 1000]).argmax(1) for i in range(0, len(u), 1000)]).numpy()
        classes_fp, confs = reg["fingerprint_classes"], reg["confidences"]
        n_users = a.users or len(classes_fp) * len(confs)
        self.targets = [classes_fp[i // len(confs)] for i in range(n_users)]
        self.confs = [confs[i % len(confs)] for i in range(n_users)]
        sources = pick_sources(self.targets, labels, pred, a.seed)
        listed = 0
        per_class = len(confs)
        for u_ in reg["users"]:
            # fp issue's identity is t·T + j (t the class, j the confidence's index); i is its
            # position here, class by class in fingerprint_classes' order
            t_, j_ = divmod(u_["id"], per_class)
            if t_ not in classes_fp:
                raise SystemExit(f"fp_torch.py: registry user {u_['id']}: class {t_} is not a fingerprint class")
            i = classes_fp.index(t_) * per_class + j_
            if i >= n_users:
                continue
            listed += 1
            if u_["class"] != self.targets[i] or abs(u_["confidence"] - self.confs[i]) > 1e-6:
                raise SystemExit(f"fp_torch.py: registry user {u_['id']}: class/confidence differ from the numbering")
            if u_["source_index"] != sources[i]:
                # a source the registry lists wins; a difference means a retry round or another seed
                print(f"fp_torch.py: warning: user {u_['id']}: registry source {u_['source_index']}, recomputed {sources[i]}",
                      file=sys.stderr)
                sources[i] = u_["source_index"]
        if min(sources) < 0:
            raise SystemExit("fp_torch.py: no source image left for some user")
        self.sources, self.listed = sources, listed
        self.x0 = torch.from_numpy(images[sources].astype(np.float32) / 255.0)
        self.t = torch.tensor(self.targets, dtype=torch.long)
        self.c = torch.tensor(self.confs, dtype=torch.float32)
        q = ((1.0 - self.c) / (self.k - 1)).unsqueeze(1).repeat(1, self.k)
        q[torch.arange(n_users), self.t] = self.c
        self.q, self.log_q = q, torch.log(q)
        self.n = n_users


def objective(s, delta, alpha, w):
    """x' = (tanh δ + 1)/2; per item: ||x' − x0||², α·(f + w·KL(q ‖ softmax z)); and the logits."""
    xp = (torch.tanh(delta) + 1.0) * 0.5
    z = s.model((xp - s.mean) / s.std)
    dist = (xp - s.x0).pow(2).flatten(1).sum(1)
    z_t = z.gather(1, s.t.unsqueeze(1)).squeeze(1)
    z_other = z.scatter(1, s.t.unsqueeze(1), float("-inf")).max(1).values
    f = torch.clamp(z_other - z_t, min=0.0)
    kl = (s.q * (s.log_q - F.log_softmax(z, 1))).sum(1)
    return dist, alpha * (f + w * kl), z


def meets(s, z, margin):
    p = torch.softmax(z, 1)
    p_t = p.gather(1, s.t.unsqueeze(1)).squeeze(1)
    return (p.argmax(1) == s.t) & ((p_t - s.c).abs() < margin), p_t


def judge(s, delta, margin):
    """the 8-bit image of δ as it is handed out: round half up, then the loader's normalisation"""
    b = torch.clamp(torch.floor((torch.tanh(delta) + 1.0) * 0.5 * 255.0 + 0.5), 0.0, 255.0)
    z = s.model(b * s.scale + s.shift)
    ok, p_t = meets(s, z, margin)
    return ok, (b / 255.0 - s.x0).pow(2).flatten(1).sum(1), p_t, b


def cw(s, a, search_steps, max_iter, margin, stop_early):
    n = s.n
    start = torch.atanh((2.0 * s.x0 - 1.0) * 0.999999)
    alpha = torch.full((n,), a.alpha)
    lo, hi = torch.zeros(n), torch.full((n,), a.alpha_max)
    best_sq = torch.full((n,), math.inf)
    best_p = torch.zeros(n)
    best_b = torch.zeros_like(s.x0)
    iters = judges = 0
    for _ in range(search_steps):
        delta = start.clone().requires_grad_(True)
        opt = torch.optim.Adam([delta], lr=a.lr)
        met = torch.zeros(n, dtype=torch.bool)
        previous = math.inf
        for it in range(max_iter):
            dist, loss, z = objective(s, delta, alpha, a.conf_weight)
            total = dist.sum() + loss.sum()
            with torch.no_grad():
                ok, _ = meets(s, z, margin)
                cand = ok & (dist < best_sq)
            value = total.item()
            opt.zero_grad()
            total.backward()
            any_cand = bool(cand.any())
            if any_cand:
                before = delta.detach().clone()
            opt.step()
            iters += 1
            if any_cand:
                with torch.no_grad():
                    judges += 1
                    ok8, d8, p8, b8 = judge(s, before, margin)
                    win = cand & ok8 & (d8 < best_sq)
                    best_sq = torch.where(win, d8, best_sq)
                    best_p = torch.where(win, p8, best_p)
                    best_b[win] = b8[win]
                    met |= win
            if stop_early:
                if bool(met.all()):
                    break
                if max_iter >= 10 and (it + 1) % (max_iter // 10) == 0:
                    if value > previous * 0.9999:
                        break
                    previous = value
        hi = torch.where(met, torch.minimum(hi, alpha), hi)
        lo = torch.where(met, lo, torch.maximum(lo, alpha))
        alpha = 0.5 * (lo + hi)
    return iters, judges, best_sq, best_p, best_b


def cmd_time(s, a):
    rates = []
    for r in range(a.repeats):
        t0 = time.perf_counter()
        c0 = time.process_time()
        iters, judges, *_ = cw(s, a, 1, a.iters, 1e-6, False)
        sec, cpu = time.perf_counter() - t0, time.process_time() - c0
        rates.append(iters / sec)
        print(json.dumps({"impl": "pytorch", "mode": "time", "run": r + 1, "users": s.n, "cw_iterations": iters,
                          "cw_judge_forwards": judges, "seconds": round(sec, 3), "cpu_seconds": round(cpu, 3),
                          "iterations_per_s": round(iters / sec, 2), "threads": torch.get_num_threads(),
                          "torch": torch.__version__}), flush=True)
    print(json.dumps({"impl": "pytorch", "mode": "time_median", "iterations_per_s": round(statistics.median(rates), 2),
                      "repeats": a.repeats}), flush=True)


def cmd_issue(s, a):
    margin = a.margin or s.margin
    t0 = time.perf_counter()
    iters, judges, best_sq, best_p, best_b = cw(s, a, a.search_steps, a.iters, margin, True)
    sec = time.perf_counter() - t0
    with torch.no_grad():  # the kept 8-bit images, checked again alone as `fp auth` reads them
        p = torch.softmax(s.model(best_b * s.scale + s.shift), 1)
        p_t = p.gather(1, s.t.unsqueeze(1)).squeeze(1)
        ok = (p.argmax(1) == s.t) & ((p_t - s.c).abs() < margin) & torch.isfinite(best_sq)
    got = [i for i in range(s.n) if ok[i]]
    print(json.dumps({
        "impl": "pytorch", "mode": "issue", "users": s.n, "issued": len(got), "margin": margin,
        "not_issued": [i for i in range(s.n) if not ok[i]],
        "mean_l2": round(float(best_sq[ok].sqrt().mean()), 4) if got else 0.0,
        "seconds": round(sec, 2), "fingerprints_per_s": round(len(got) / sec, 3), "cw_iterations": iters,
        "cw_judge_forwards": judges, "search_steps": a.search_steps, "iters": a.iters,
        "sources_from_registry": s.listed, "threads": torch.get_num_threads()}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", help="the IDX folder (default: the registry's data spec)")
    ap.add_argument("--seed", type=int, default=1, help="fp issue's --seed (default 1)")
    ap.add_argument("--users", type=int, default=0, help="fp issue's --users (default: classes × confidences)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "0") or 0))
    ap.add_argument("--lr", type=float, default=0.005, help="Adam's step on δ (dnnguard's grey default)")
    ap.add_argument("--alpha", type=float, default=20.0)
    ap.add_argument("--alpha-max", type=float, default=40.0)
    ap.add_argument("--conf-weight", type=float, default=3.0)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("time")
    t.add_argument("--iters", type=int, default=300)
    t.add_argument("--repeats", type=int, default=3)
    i = sub.add_parser("issue")
    i.add_argument("--search-steps", type=int, default=6)
    i.add_argument("--iters", type=int, default=1000)
    i.add_argument("--margin", type=float, default=0.0, help="default: the registry's")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    s = Setup(a)
    (cmd_time if a.cmd == "time" else cmd_issue)(s, a)


if __name__ == "__main__":
    main()
