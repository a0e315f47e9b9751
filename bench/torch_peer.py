#!/usr/bin/python3
"""bench/torch_peer.py — the PyTorch side of bench/cpu.sh and bench/gpu.sh: the same training step as
dg_bench_train (same nets from tests/torch_nets.py, same batch, SGD momentum 0.9) and the same conv
layers as dg_bench_gemm, printed as JSON lines with the same keys. Run it with Debian's
/usr/bin/python3 (torch 1.13) on the CPU, with any torch that sees the GPU for --device cuda; threads:
--threads, else OMP_NUM_THREADS, else torch's default. Reads only the data set.

  torch_peer.py train --net NAME [--batch 128] [--steps 20] [--warmup 3] [--data SPEC] [--profile]
                      [--device cpu|cuda] [--precision fp32|tf32] [--cudnn-benchmark]
  torch_peer.py conv --layers FILE [--batch 128] [--min-time 0.3]     (FILE: dg_bench_gemm --list; - is stdin)

On --device cuda: PyTorch eager with cuDNN. fp32 switches TF32 off for cuDNN and matmul (PyTorch's
default lets cuDNN convolutions use TF32; dnnguard's fp32 does not); tf32 switches it on for both.
cudnn.benchmark is PyTorch's default (off) unless --cudnn-benchmark. Every phase ends with
torch.cuda.synchronize(), as dg_bench_train's end with the backend's sync. Memory: the caching
allocator's peak (torch.cuda.max_memory_allocated, what the tensors and cuDNN's workspaces took) and
the device memory the process took beyond an empty CUDA context (cudaMemGetInfo, which also counts
the allocator's cache, cuBLAS/cuDNN handles and loaded kernels).
"""
import argparse
import gzip
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
import torch_nets  # noqa: E402

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


def _open(path):
    for p in (path, path + ".gz"):
        if os.path.exists(p):
            return gzip.open(p, "rb") if p.endswith(".gz") else open(p, "rb")
    raise FileNotFoundError(path)


def load_batch(spec, batch, shape, classes):
    """The first `batch` training images of spec (as dg_bench_train takes them: file order, no
    augmentation), normalised per channel; synthetic pixels when spec is None or synthetic:..."""
    kind, _, where = (spec or "synthetic").partition(":")
    if kind in ("mnist", "fashion-mnist"):
        where = where or FASHION_MNIST_DIR
        with _open(os.path.join(where, "train-images-idx3-ubyte")) as f:
            f.read(16)
            x = np.frombuffer(f.read(batch * 784), np.uint8).reshape(batch, 1, 28, 28)
        with _open(os.path.join(where, "train-labels-idx1-ubyte")) as f:
            f.read(8)
            y = np.frombuffer(f.read(batch), np.uint8)
    elif kind == "cifar10":
        with _open(os.path.join(where, "data_batch_1.bin")) as f:
            rec = np.frombuffer(f.read(batch * 3073), np.uint8).reshape(batch, 3073)
        y, x = rec[:, 0], rec[:, 1:].reshape(batch, 3, 32, 32)
    elif kind == "synthetic":
        rng = np.random.default_rng(1)
        x = rng.integers(0, 256, size=(batch,) + tuple(shape), dtype=np.uint8)
        y = np.arange(batch) % classes
    else:
        raise SystemExit(f"torch_peer.py: unknown data set '{spec}'")
    if len(x) < batch:
        raise SystemExit(f"torch_peer.py: {spec} has fewer than {batch} images")
    x = x.astype(np.float32) / 255.0
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    std = x.std(axis=(0, 2, 3), keepdims=True) + 1e-6
    return torch.from_numpy((x - mean) / std).contiguous(), torch.from_numpy(y.astype(np.int64))


def device_used_bytes():
    free, total = torch.cuda.mem_get_info()
    return total - free


def cmd_train(a):
    shape, classes = torch_nets.default_shape(a.net)
    cuda = a.device == "cuda"
    if cuda:
        if not torch.cuda.is_available():
            raise SystemExit("torch_peer.py: --device cuda: this torch sees no CUDA device")
        tf32 = a.precision == "tf32"
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = a.cudnn_benchmark
        torch.cuda.init()
        used_at_start = device_used_bytes()  # the empty context; what follows is this benchmark's
        torch.cuda.reset_peak_memory_stats()
    elif a.precision != "fp32" or a.cudnn_benchmark:
        raise SystemExit("torch_peer.py: --precision tf32 and --cudnn-benchmark need --device cuda")
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.manual_seed(a.seed)
    x, y = load_batch(a.data, a.batch, shape, classes)
    x, y = x.to(dev), y.to(dev)
    model = torch_nets.build(a.net, classes).to(dev)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum, weight_decay=a.wd)

    def step():
        c0 = time.process_time()  # CPU time of all threads; see dg_bench_train's cpu_ms
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        loss_value = loss.item()  # dnnguard also brings the loss to the host every step
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=False)  # writes zeros, as dg_net_zero_grad (torch 1.13's default)
        loss.backward()
        sync()
        t2 = time.perf_counter()
        opt.step()
        sync()
        t3 = time.perf_counter()
        c3 = time.process_time()
        if loss_value != loss_value:
            print("torch_peer.py: warning: loss is nan", file=sys.stderr)
        return t1 - t0, t2 - t1, t3 - t2, t3 - t0, c3 - c0

    for _ in range(a.warmup):
        step()
    times = [step() for _ in range(a.steps)]
    # medians per phase (robust to other work on the machine), as dg_bench_train; the plain mean too
    fwd, bwd, optim, total = (statistics.median(t[i] for t in times) * 1e3 for i in range(4))
    mean = sum(t[3] for t in times) / a.steps * 1e3
    extra = {}
    if cuda:
        extra = {"device": torch.cuda.get_device_name(), "precision": a.precision,
                 "cudnn_benchmark": a.cudnn_benchmark, "cudnn": torch.backends.cudnn.version(),
                 "device_peak_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1),
                 "device_used_mib": round((device_used_bytes() - used_at_start) / 2**20, 1)}
    print(json.dumps({
        "impl": "pytorch", "net": a.net, "batch": a.batch, "threads": torch.get_num_threads(),
        "images_per_s": round(a.batch / total * 1e3, 2), "ms_per_step": round(total, 3),
        "forward_ms": round(fwd, 3), "backward_ms": round(bwd, 3), "optim_ms": round(optim, 3),
        "images_per_s_mean": round(a.batch / mean * 1e3, 2), "ms_per_step_mean": round(mean, 3),
        "ms_per_step_min": round(min(t[3] for t in times) * 1e3, 3),
        "cpu_ms_per_step": round(statistics.median(t[4] for t in times) * 1e3, 3),
        "steps": a.steps, "warmup": a.warmup, "data": (a.data or "synthetic").split(":")[0],
        "torch": torch.__version__, "mkldnn": torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled,
        "backend": a.device, **extra,
    }), flush=True)

    if a.profile:
        from torch.profiler import ProfilerActivity, profile
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with profile(activities=acts) as prof:
            t0 = time.perf_counter()
            for _ in range(a.steps):
                step()
            wall = (time.perf_counter() - t0) / a.steps * 1e3

        def self_us(e):  # on the GPU, where the kernels' time is; on the CPU, the operators' own time
            if not cuda:
                return e.self_cpu_time_total
            # torch 2.x names it self_device_time_total; 1.13 self_cuda_time_total
            return e.self_device_time_total if hasattr(e, "self_device_time_total") else e.self_cuda_time_total
        rows = sorted(prof.key_averages(), key=self_us, reverse=True)
        for e in rows[:a.profile_top]:
            ms = self_us(e) / 1e3 / a.steps
            print(json.dumps({"profile": "op", "impl": "pytorch", "net": a.net, "op": e.key,
                              "calls_per_step": round(e.count / a.steps, 1), "self_ms_per_step": round(ms, 3),
                              "pct_of_step": round(100 * ms / wall, 1)}), flush=True)
        print(json.dumps({"profile": "step", "impl": "pytorch", "net": a.net, "step_ms": round(wall, 3)}), flush=True)


def best_time(fn, min_s, min_reps=3):
    fn()
    best, start, r = float("inf"), time.perf_counter(), 0
    while r < min_reps or time.perf_counter() - start < min_s:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        r += 1
        if r > 1000:
            break
    return best


def cmd_conv(a):
    f = sys.stdin if a.layers == "-" else open(a.layers)
    layers = [json.loads(line) for line in f if line.strip()]
    threads = torch.get_num_threads()
    torch.manual_seed(1)
    peak = 0.0
    for n in (1024, 2048, 3072):
        p, q = torch.randn(n, n), torch.randn(n, n)
        t = best_time(lambda: torch.mm(p, q), a.min_time)
        gf = 2 * n ** 3 / t * 1e-9
        peak = max(peak, gf)
        print(json.dumps({"impl": "pytorch", "op": "sgemm", "m": n, "n": n, "k": n, "threads": threads,
                          "ms": round(t * 1e3, 3), "gflops": round(gf, 2)}), flush=True)
    print(json.dumps({"impl": "pytorch", "op": "sgemm_peak", "threads": threads, "gflops": round(peak, 2)}),
          flush=True)
    for L in layers:
        if a.only and L["layer"] != a.only:
            continue
        n, c, h, k, r, s, st, pad = a.batch, L["c"], L["h"], L["k"], L["r"], L["s"], L["stride"], L["pad"]
        x = torch.randn(n, c, h, L["w"])
        w = torch.randn(k, c, r, s)
        y = F.conv2d(x, w, None, st, pad)
        dy = torch.randn_like(y)
        oh, ow = y.shape[2], y.shape[3]
        flop = 2.0 * n * k * c * r * s * oh * ow
        conv_bwd = torch.ops.aten.convolution_backward  # what autograd calls for conv2d
        ops = {
            "fwd": lambda: F.conv2d(x, w, None, st, pad),
            "bwd_data": lambda: conv_bwd(dy, x, w, None, [st, st], [pad, pad], [1, 1], False, [0, 0], 1,
                                         [True, False, False]),
            "bwd_filter": lambda: conv_bwd(dy, x, w, None, [st, st], [pad, pad], [1, 1], False, [0, 0], 1,
                                           [False, True, False]),
        }
        for name, fn in ops.items():
            t = best_time(fn, a.min_time)
            gf = flop / t * 1e-9
            print(json.dumps({"impl": "pytorch", "op": name, "layer": L["layer"], "used": L.get("used", ""),
                              "n": n, "c": c, "h": h, "k": k, "r": r, "stride": st, "pad": pad,
                              "threads": threads, "ms": round(t * 1e3, 3), "gflops": round(gf, 2),
                              "pct_of_sgemm_peak": round(100 * gf / peak, 1)}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "0") or 0))
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--net", required=True)
    t.add_argument("--batch", type=int, default=128)
    t.add_argument("--steps", type=int, default=20)
    t.add_argument("--warmup", type=int, default=3)
    t.add_argument("--data")
    t.add_argument("--lr", type=float, default=0.01)
    t.add_argument("--momentum", type=float, default=0.9)
    t.add_argument("--wd", type=float, default=5e-4)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    t.add_argument("--precision", choices=("fp32", "tf32"), default="fp32")
    t.add_argument("--cudnn-benchmark", action="store_true")
    t.add_argument("--profile", action="store_true")
    t.add_argument("--profile-top", type=int, default=25)
    c = sub.add_parser("conv")
    c.add_argument("--layers", required=True)
    c.add_argument("--batch", type=int, default=128)
    c.add_argument("--min-time", type=float, default=0.3)
    c.add_argument("--only")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    with torch.no_grad() if a.cmd == "conv" else torch.enable_grad():
        (cmd_train if a.cmd == "train" else cmd_conv)(a)


if __name__ == "__main__":
    main()
