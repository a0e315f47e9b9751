"""tests/test_nets_torch.py — the PyTorch oracle for dnnguard's nets. For each net: `dnnguard info
--json` must list exactly the PyTorch state dict (names, shapes, order; trainable count), and
`dnnguard grad` on random weights must give PyTorch's logits, loss, parameter gradients and input
gradient (batch norm in training mode, dropout off) to a normalised error of 1e-4 (see
DECISION_TOL for the one exception, a ReLU/max-pool decision flipped by rounding).
Usage: test_nets_torch.py [NET ...]; env DNNGUARD, DG_SHARED_DATA, DG_TEST_SEED (shifts every
net's seed), DG_TEST_SYNTHETIC (the ImageNet nets' data). Writes only to a temporary folder."""
import copy
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402
import torch_nets  # noqa: E402

TOL = 1e-4
# A ReLU input or a max-pool window within float32 rounding of a tie can be decided either way by
# two correct float32 implementations; the gradient then moves at one position, which shows as a
# normalised error of about 1/sqrt(units in that layer) in every gradient below it. Seen while
# writing this test (DG_TEST_SEED 0, 10, 20, 30): PyTorch float32 itself 2.3e-3 off its float64
# result on vgg16 (one max-pool window at features.23 with a relative gap of 8e-7); dnnguard off
# both by up to 2.7e-2 on resnet18 (one ReLU input at layer3.0 of 1.8e-6 against an rms of 1.65),
# 1.7e-2 on resnet18-cifar, 4e-3 on vgg16-cifar, 9e-4 on vgg16, each time from one channel of one
# tensor down. A wrong op gives errors of order 1 spread over every channel.
DECISION_TOL = 5e-2
# Tensors that agree show errors up to 8e-6 (float32 rounding); one above this is diverging.
FLIP_FLOOR = 2e-5
NETS = ["lenet5", "wrn-16-4", "wrn-10-4", "vgg16-cifar", "resnet18-cifar", "vgg16", "resnet18"]

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("DG_SOURCE_DIR", os.path.dirname(HERE))
DNNGUARD = os.environ.get("DNNGUARD", os.path.join(SOURCE, "build", "dnnguard"))
DATA = os.environ.get("DG_SHARED_DATA", os.path.join(SOURCE, "..", "shared", "data"))


def data_spec(name):
    """(--data SPEC, batch) for a net. DG_TEST_SYNTHETIC overrides the ImageNet nets' synthetic set
    (its K is then their class count)."""
    if name == "lenet5":
        return f"mnist:{DATA}/mnist", 4
    if name in ("vgg16", "resnet18"):
        return os.environ.get("DG_TEST_SYNTHETIC", "synthetic:3,224,224,1000"), 2
    return f"cifar10:{DATA}/cifar10", 4


def run(args, timeout=600):
    p = subprocess.run([DNNGUARD] + args, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"dnnguard {' '.join(args)} exited {p.returncode}: {p.stderr.strip()[-2000:]}")
    return p.stdout


def randomize(model, seed):
    """Seeded random weights; batch-norm affine parameters and running statistics far from their
    defaults, so that a train/eval mix-up or a dropped β shows in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                bound = (6.0 / fan_in) ** 0.5  # He uniform: activations keep their scale through vgg16
                m.weight.copy_((torch.rand(m.weight.shape, generator=g) * 2 - 1) * bound)
                if m.bias is not None:
                    m.bias.copy_((torch.rand(m.bias.shape, generator=g) * 2 - 1) * 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_((torch.rand(m.bias.shape, generator=g) * 2 - 1) * 0.5)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 1.5 + 0.5)
                m.num_batches_tracked.fill_(7)


def nerr(a, b):
    """||a - b|| / ||b|| in float64 (||a - b|| when b is all zeros)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        return float("inf")
    nb = np.linalg.norm(b)
    d = np.linalg.norm(a - b)
    return float(d / nb) if nb > 0 else float(d)


def check_info(name, model, classes, chw, problems):
    """Compare `info --json` with the module (names, shapes and order; counts); appends to problems."""
    info = json.loads(run(["info", "--net", name, "--json"]))
    want = [(k, list(v.shape)) for k, v in torch_nets.state_tensors(model)]
    got = [(p["name"], list(p["shape"])) for p in info.get("params", [])]
    if info.get("net") != name:
        problems.append(f"info net {info.get('net')!r}")
    if list(info.get("input", [])) != list(chw):
        problems.append(f"info input {info.get('input')} != {list(chw)}")
    if info.get("classes") != classes:
        problems.append(f"info classes {info.get('classes')} != {classes}")
    if got != want:
        gs, ws = dict(got), dict(want)
        missing = [k for k in ws if k not in gs]
        extra = [k for k in gs if k not in ws]
        shapes = [f"{k} {gs[k]} vs torch {ws[k]}" for k in ws if k in gs and gs[k] != ws[k]]
        if missing or extra or shapes:
            problems.append(f"info params: missing {missing[:5]} extra {extra[:5]} shapes {shapes[:5]}")
        else:
            problems.append("info params: same names and shapes, different order")
    trainable = torch_nets.trainable_count(model)
    if info.get("trainable") != trainable:
        problems.append(f"info trainable {info.get('trainable')} != torch {trainable}")
    total = sum(v.numel() for _, v in torch_nets.state_tensors(model))
    if "total" in info and info["total"] != total:
        problems.append(f"info total {info['total']} != torch {total}")


def zero_by_bn(model):
    """{conv bias name: following batch norm's bias name} for convolutions with a bias that feed a
    batch norm directly (vgg16-cifar): in training mode their exact gradient is 0 (the batch norm
    removes any per-channel shift), so both sides return rounding noise; such a tensor is measured
    against the batch norm's β gradient, the size its gradient would have without the batch norm."""
    refs = {}
    for prefix, mod in model.named_modules():
        if isinstance(mod, nn.Sequential):
            kids = list(mod.named_children())
            for (a, ma), (b, mb) in zip(kids, kids[1:]):
                if isinstance(ma, nn.Conv2d) and ma.bias is not None and isinstance(mb, nn.BatchNorm2d):
                    p = prefix + "." if prefix else ""
                    refs[p + a + ".bias"] = p + b + ".bias"
    return refs


def torch_reference(model, x, labels, dtype):
    """{logits, loss, input.grad, every parameter}: numpy arrays from PyTorch in dtype, batch norm
    in training mode, dropout off. model itself is used for float32, a copy for other dtypes."""
    if dtype != torch.float32:
        model = copy.deepcopy(model).to(dtype)
    model.train()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.eval()
    model.zero_grad(set_to_none=True)
    xt = x.detach().clone().to(dtype).requires_grad_(True)
    logits = model(xt)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    out = {"logits": logits.detach().numpy(), "loss": loss.detach().numpy().reshape(-1),
           "input.grad": xt.grad.numpy()}
    for name, p in model.named_parameters():
        out[name] = p.grad.numpy()
    return out


def errors(got, ref, zero_refs):
    """{tensor: normalised error} of dnnguard's output against a reference."""
    errs = {}
    for k, b in ref.items():
        if k not in got:
            continue
        a = np.asarray(got[k]).reshape(-1) if k == "loss" else got[k]
        if k in zero_refs:
            scale = np.linalg.norm(np.asarray(ref[zero_refs[k]], dtype=np.float64))
            d = np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
            errs[k] = float(d / scale) if scale > 0 else float(d)
        else:
            errs[k] = nerr(a, b)
    return errs


def slices_holding(a, b, share=0.9):
    """How many slices along the first axis hold `share` of the squared error of a against b."""
    d = (np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2
    d = np.sort(d.reshape(d.shape[0], -1).sum(axis=1))[::-1]
    total = d.sum()
    return int(np.searchsorted(np.cumsum(d), share * total) + 1) if total > 0 else 0


def check_grad(name, model, chw, tmp, problems, notes):
    """Run `dnnguard grad` on the module's weights and compare with PyTorch; returns
    (worst error, tensor name).

    Logits and loss must match PyTorch float32 to TOL. A gradient matches when it is within TOL of
    PyTorch float32 or, failing that, of PyTorch float64 (PyTorch's own float32 gradients are
    sometimes 2e-3 away from its float64 ones, see DECISION_TOL). Past that, the errors are taken as
    one ReLU or max-pool decision flipped by rounding, and accepted with a note, only when all of
    them stay under DECISION_TOL and the first diverging tensor (error over FLIP_FLOOR) in backward
    order (parameters in reverse registration order) carries its error in at most 2 channels (a
    flip moves the gradient at one position, so one channel; a wrong op spreads its error over all
    channels)."""
    spec, batch = data_spec(name)
    wpath, gpath = os.path.join(tmp, "w.safetensors"), os.path.join(tmp, "g.safetensors")
    st_io.write(wpath, {k: v for k, v in model.state_dict().items()})
    run(["grad", "--net", name, "--model", wpath, "--data", spec, "--batch", str(batch), "--seed", "1",
         "--out", gpath])
    g = st_io.read(gpath)
    os.remove(wpath)
    os.remove(gpath)
    for key in ("input", "labels", "loss", "logits", "input.grad"):
        if key not in g:
            problems.append(f"grad output lacks {key}")
            return float("inf"), key
    x = torch.from_numpy(g["input"].astype(np.float32))
    labels = torch.from_numpy(g["labels"].astype(np.int64)).reshape(-1)
    if x.shape[0] != batch or labels.shape[0] != batch or tuple(x.shape[1:]) != tuple(chw):
        problems.append(f"grad batch: input {tuple(x.shape)}, labels {tuple(labels.shape)}, asked {batch}x{chw}")
    params = [pname for pname, _ in model.named_parameters()]
    for pname in params:
        if pname not in g:
            problems.append(f"grad output lacks {pname}")

    zero_refs = zero_by_bn(model)
    ref = torch_reference(model, x, labels, torch.float32)
    errs = errors(g, ref, zero_refs)
    best_ref = {k: ref for k in errs}
    forward = ("logits", "loss")
    over = [k for k, e in errs.items() if not e <= TOL and k not in forward]
    if over:  # the float64 reference decides whether PyTorch's float32 run was the one off
        ref64 = torch_reference(model, x, labels, torch.float64)
        e64 = errors(g, ref64, zero_refs)
        for k in errs:
            if k not in forward and e64[k] < errs[k]:
                errs[k], best_ref[k] = e64[k], ref64
    worst = max(errs, key=lambda k: errs[k] if errs[k] == errs[k] else float("inf"))
    for k in forward:
        if not errs[k] <= TOL:
            problems.append(f"{k}: error {errs[k]:.3g} (tolerance {TOL})")
    backward_order = [k for k in params[::-1] + ["input.grad"] if k in errs]
    bad = [k for k in backward_order if not errs[k] <= TOL]
    if not bad:
        return errs[worst], worst
    # where the gradients start to diverge: a flip may first show below TOL (a max-pool flip
    # leaves the bias below it exact and moves one filter's weight gradient by less than TOL)
    first = next((k for k in backward_order if errs[k] > FLIP_FLOOR and k not in zero_refs), bad[0])
    spread = slices_holding(g[first], best_ref[first][first]) if first not in zero_refs else 0
    if all(errs[k] <= DECISION_TOL for k in bad) and 0 < spread <= 2 and not problems:
        notes.append(f"{len(bad)} gradient(s) between {TOL} and {errs[worst]:.2e} against both float32 and "
                     f"float64 PyTorch, from {first} down ({spread} of its {g[first].shape[0]} channels): "
                     f"taken as one ReLU/max-pool decision flipped by rounding")
    else:
        problems.append(f"first diverging tensor {first}: 90% of its error in {spread} of {g[first].shape[0]} "
                        f"channels")
        for k in bad[:8]:
            problems.append(f"{k}: error {errs[k]:.3g}")
        if len(bad) > 8:
            problems.append(f"... and {len(bad) - 8} more tensors over {TOL}")
    return errs[worst], worst


def main():
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    names = sys.argv[1:] or NETS
    if not os.access(DNNGUARD, os.X_OK):
        print(f"test_nets_torch: no dnnguard binary at {DNNGUARD}")
        print(f"0 passed, {len(names)} failed")
        return 1
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="dg_nets_torch_") as tmp:
        for name in names:
            t0 = time.time()
            chw, classes = torch_nets.default_shape(name)
            spec = data_spec(name)[0]
            if spec.startswith("synthetic:"):
                classes = int(spec.split(":", 1)[1].split(",")[3])
            # a net's seed does not depend on which other nets run
            seed = 1000 + (NETS.index(name) if name in NETS else len(NETS)) + int(os.environ.get("DG_TEST_SEED", "0"))
            torch.manual_seed(seed)
            model = torch_nets.build(name, classes)
            randomize(model, seed)
            problems, notes = [], []
            worst, where = float("nan"), "-"
            try:
                default_classes = torch_nets.default_shape(name)[1]
                info_model = model if classes == default_classes else torch_nets.build(name, default_classes)
                check_info(name, info_model, default_classes, chw, problems)
                del info_model
                worst, where = check_grad(name, model, chw, tmp, problems, notes)
            except Exception as e:  # one net's failure must not hide the others
                problems.append(f"{type(e).__name__}: {e}")
            ok = not problems
            passed += ok
            failed += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {name:15s} worst error {worst:.2e} ({where}) {time.time() - t0:.1f}s",
                  flush=True)
            for p in problems:
                print(f"     {p}", flush=True)
            for n in notes:
                print(f"     note: {n}", flush=True)
            del model
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
