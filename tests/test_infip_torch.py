"""tests/test_infip_torch.py — dnnguard's DTD relevance against PyTorch (tests/torch_dtd.py, the rules
written again in plain autograd) on the same weights and the same real key images: `infip extract`'s
raw relevance (relevance.safetensors) must equal PyTorch's float64 result to 1e-4 of its largest
value, its predictions and logits PyTorch's, and its fingerprint PNGs the images of PyTorch's
relevance (a pixel may differ by one level where float32 rounding crosses a rounding step). Nets:
LeNet-5 trained by dnnguard on MNIST (z^B conv with padding, max pool, z+ linear; both injections),
vgg16-cifar and resnet18-cifar with PyTorch's initialisation and random batch-norm statistics, saved
by PyTorch (batch norm folded, residual splits, the 1x1 downsample, global average pool), and
wrn-10-4 (batch norm passed through, the shortcut conv). The WRN's batch-norm shifts are zero: with
them an add's output can sit near 0 where relevance still arrives, and a float32 result then moves
by far more than 1e-4 without any bug (float32 against float64 in PyTorch itself shows it).

Ill-conditioned images. A residual sum can cancel to about 0 (a = −b to seven digits) where
relevance still arrives; the split a·R/y then rests on the sign rounding gives y, and two correct
implementations that round differently disagree by far more than 1e-4. PyTorch's float64 pass counts
such near-cancellations (|y| ≤ 1e-5 (|a| + |b|), tests/torch_dtd.py). Max-pool ties are shared by
the rule itself (inputs within 1e-5 of the maximum, docs/infip.md), which moves the discontinuity to
that limit: an input just beyond it shares in one implementation and not in another. PyTorch's
float64 pass is rerun with the limit 5% lower and higher (5e-7 of the maximum, a few float32
roundings of the pool's input); an image whose relevance moves by more than
a tenth of the tolerance is near a tie limit. An image of either kind is reported (how far dnnguard
is from PyTorch on it is printed, not asserted). Every other image must agree to 1e-4, and at least
half of each net's images must be free of them."""
import os
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402
import torch_dtd  # noqa: E402
import torch_nets  # noqa: E402
from cli_check import CIFAR, MNIST, check, done, run  # noqa: E402

torch.set_num_threads(2)
T0 = time.time()
tmp = tempfile.mkdtemp(prefix="dg-infip-torch-")
P = lambda name: os.path.join(tmp, name)


def torch_model(name, seed, shifts=True):
    """PyTorch's initialisation, random batch-norm statistics (some negative gammas), saved by PyTorch."""
    torch.manual_seed(seed)
    m = torch_nets.build(name, 10)
    g = torch.Generator().manual_seed(seed)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            c = mod.num_features
            mod.weight.data = (torch.rand(c, generator=g) + 0.5) * torch.where(torch.rand(c, generator=g) < 0.2, -1.0, 1.0)
            mod.running_var.data = torch.rand(c, generator=g) * 1.5 + 0.5
            if shifts:
                mod.bias.data = torch.rand(c, generator=g) * 0.4 - 0.2
                mod.running_mean.data = torch.rand(c, generator=g) * 0.4 - 0.2
            else:
                mod.bias.data.zero_()
                mod.running_mean.data.zero_()
    path = P(f"{name}.safetensors")
    st_io.write(path, {k: v for k, v in m.state_dict().items()})
    return path


def load_module(name, path, classes=10):
    m = torch_nets.build(name, classes)
    state = {k: torch.from_numpy(np.array(v)) for k, v in st_io.read(path).items()}
    m.load_state_dict(state, strict=False)
    return m.eval()


def compare(name, model, data, n, *extra, tol=1e-4):
    ref = P(f"ref-{name}{'-'.join(extra)}")
    r = run("infip", "extract", "--model", model, "--net", name, "--keys", data, "--n", str(n), "--seed", "5",
            "--lambda", "5000", "--backend", "cpu", "--out", ref, *extra)
    if not check(r.returncode == 0, f"{name} {extra}: infip extract ({r.stderr.strip()[-300:]})"):
        return
    x, man = torch_dtd.reference_keys(ref)
    saved = st_io.read(os.path.join(ref, "relevance.safetensors"))
    R_dg, logits_dg = saved["relevance"].astype(np.float64), saved["logits"].astype(np.float64)
    module = load_module(name, model)
    inject = "logit" if "logit" in extra else "one"
    stats = {}
    R64, pred, logits = torch_dtd.relevance(name, module, x, man["mean"], man["std"], inject=inject,
                                            dtype=torch.float64, stats=stats)
    R32, _, _ = torch_dtd.relevance(name, module, x, man["mean"], man["std"], inject=inject, dtype=torch.float32)
    R64, logits = R64.numpy(), logits.numpy()
    per = lambda a: np.abs(a - R64).reshape(n, -1).max(1) / np.abs(R64).reshape(n, -1).max(1)
    e_dg, e_32 = per(R_dg), per(R32.numpy().astype(np.float64))
    cancel = stats["near_cancellations"].numpy()
    # a max-pool input near the tie limit: the float64 relevance moves when the limit moves by ±5%
    # (5e-7 of the maximum, a few float32 roundings), so whether it shares rests on rounding
    tie_moves = np.zeros(n)
    for scale in (0.95, 1.05):
        saved_tie, torch_dtd.TIE = torch_dtd.TIE, torch_dtd.TIE * scale
        try:
            Rt, _, _ = torch_dtd.relevance(name, module, x, man["mean"], man["std"], inject=inject, dtype=torch.float64)
        finally:
            torch_dtd.TIE = saved_tie
        tie_moves = np.maximum(tie_moves, per(Rt.numpy()))
    near_tie = tie_moves > tol / 10
    good = (cancel == 0) & ~near_tie
    worst = e_dg[good].max() if good.any() else float("nan")
    check(good.sum() * 2 >= n and worst < tol,
          f"{name} {inject}: relevance against PyTorch float64 on {good.sum()} well-conditioned images of {n}: "
          f"worst {worst:.2e} (PyTorch float32: {e_32[good].max() if good.any() else float('nan'):.2e})")
    for i in np.nonzero(~good)[0]:
        print(f"     {name} image {i} ill-conditioned ({cancel[i]} near-cancelling residual sums; moving the "
              f"max-pool tie limit moves it by {tie_moves[i]:.1e}): "
              f"dnnguard {e_dg[i]:.1e}, PyTorch float32 {e_32[i]:.1e} from PyTorch float64")
    e_log = np.abs(logits_dg - logits).max() / max(np.abs(logits).max(), 1e-30)
    check(e_log < 1e-4, f"{name}: logits against PyTorch: {e_log:.2e}")
    check([k["predicted"] for k in man["keys"]] == pred.tolist(), f"{name}: predictions {pred.tolist()}")
    want = torch_dtd.fingerprint_images(torch.from_numpy(R64[good]), 5000.0)
    got = np.stack([np.array(Image.open(os.path.join(ref, k["fingerprint"])))
                    for k, g in zip(man["keys"], good) if g])
    d = np.abs(got.astype(int) - want.astype(int))
    check(d.max() <= 1 and (d > 0).mean() <= 0.005,
          f"{name}: fingerprint PNGs against PyTorch's relevance: {(d > 0).sum()} of {d.size} pixels differ by one")
    sums = R64.reshape(len(R64), -1).sum(1)
    print(f"     {name}: relevance sums {np.round(sums, 6).tolist()} (v = {'logit' if inject == 'logit' else 1})")


def main():
    lenet = P("lenet5.safetensors")
    r = run("train", "--net", "lenet5", "--data", MNIST, "--epochs", "1", "--subset", "6000", "--opt", "adam",
            "--lr", "1e-3", "--eval-every", "0", "--out", lenet)
    check(r.returncode == 0, "lenet5 trained by dnnguard on MNIST")
    compare("lenet5", lenet, MNIST, 8)
    compare("lenet5", lenet, MNIST, 8, "--inject", "logit")
    compare("vgg16-cifar", torch_model("vgg16-cifar", 1), CIFAR, 6)
    compare("resnet18-cifar", torch_model("resnet18-cifar", 2), CIFAR, 6)
    compare("wrn-10-4", torch_model("wrn-10-4", 3, shifts=False), CIFAR, 6)
    print(f"test_infip_torch: {time.time() - T0:.0f} s")
    done()


if __name__ == "__main__":
    main()
