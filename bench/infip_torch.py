"""bench/infip_torch.py — the PyTorch peer of bench/infip.sh (InFIP's costs): the same DTD relevance
pass (tests/torch_dtd.py, z+/z^B in the standard autograd formulation) on the same weights and key
images as a dnnguard reference folder, timed; and SSIM pairs per second with scikit-image (the
11x11 Gaussian form) and numpy (the global form) on the same fingerprint pairs as dg_bench_ssim.

  infip_torch.py model NET OUT                     torchvision-style initialisation (random batch-norm
                                                   statistics) saved as safetensors, for both sides
  infip_torch.py relevance NET MODEL REF BATCH     keys/s over the reference's keys; the largest
                                                   difference from dnnguard's relevance.safetensors
  infip_torch.py ssim DIR_A DIR_B N REPS           pairs/s of skimage (gaussian) and numpy (global)

Prints JSON lines; decides nothing. Threads: torch.set_num_threads(OMP_NUM_THREADS)."""
import json
import os
import resource
import sys
import time

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
import st_io  # noqa: E402
import torch_dtd  # noqa: E402
import torch_nets  # noqa: E402

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))


def make_model(net, out):
    torch.manual_seed(1)
    m = torch_nets.build(net, 1000 if net in ("vgg16", "resnet18") else 10)
    g = torch.Generator().manual_seed(1)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            c = mod.num_features
            mod.running_var.data = torch.rand(c, generator=g) * 1.5 + 0.5
            mod.running_mean.data = torch.rand(c, generator=g) * 0.4 - 0.2
    st_io.write(out, dict(m.state_dict()))


def relevance(net, model, ref, batch):
    x, man = torch_dtd.reference_keys(ref)
    m = torch_nets.build(net, man["classes"])
    m.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in st_io.read(model).items()}, strict=False)
    m.eval()
    out = []
    t0 = time.perf_counter()
    for i in range(0, len(x), batch):
        R, _, _ = torch_dtd.relevance(net, m, x[i:i + batch], man["mean"], man["std"])
        out.append(R)
    seconds = time.perf_counter() - t0
    R = torch.cat(out).numpy()
    dg = st_io.read(os.path.join(ref, "relevance.safetensors"))["relevance"]
    err = float(np.abs(R - dg).max() / np.abs(dg).max())
    print(json.dumps({"impl": "pytorch", "net": net, "keys": len(x), "batch": batch, "seconds": seconds,
                      "keys_per_s": len(x) / seconds, "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "normalised_difference_from_dnnguard": err, "threads": torch.get_num_threads(),
                      "torch": torch.__version__}))


def global_ssim(a, b):
    x, y = a.astype(np.float64) / 255, b.astype(np.float64) / 255
    mx, my = x.mean(), y.mean()
    vx, vy, vxy = ((x - mx) ** 2).mean(), ((y - my) ** 2).mean(), ((x - mx) * (y - my)).mean()
    return (2 * mx * my + 1e-4) * (2 * vxy + 9e-4) / ((mx * mx + my * my + 1e-4) * (vx + vy + 9e-4))


def ssim(dir_a, dir_b, n, reps):
    from skimage.metrics import structural_similarity
    a = [np.array(Image.open(os.path.join(dir_a, f"fp-{i:05d}.png"))) for i in range(n)]
    b = [np.array(Image.open(os.path.join(dir_b, f"fp-{i:05d}.png"))) for i in range(n)]
    peers = {
        "gaussian": lambda p, q: structural_similarity(p, q, gaussian_weights=True, sigma=1.5,
                                                       use_sample_covariance=False, data_range=255),
        "global": global_ssim,
    }
    for mode, fn in peers.items():
        total, t0 = 0.0, time.perf_counter()
        for _ in range(reps):
            for p, q in zip(a, b):
                total += fn(p, q)
        seconds = time.perf_counter() - t0
        print(json.dumps({"impl": "skimage" if mode == "gaussian" else "numpy", "mode": mode,
                          "size": f"{a[0].shape[1]}x{a[0].shape[0]}", "pairs": n * reps, "seconds": seconds,
                          "pairs_per_s": n * reps / seconds, "mean_ssim": total / (n * reps)}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "model":
        make_model(sys.argv[2], sys.argv[3])
    elif cmd == "relevance":
        relevance(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif cmd == "ssim":
        ssim(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit(__doc__)
