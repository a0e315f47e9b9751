#!/usr/bin/python3
"""tests/test_optim_torch.py — PyTorch as the oracle for the CPU backend's optimizers, batch norm and
softmax cross-entropy. Builds a throwaway shared library from kernels/cpu/{optim,batchnorm,loss,memory}.c
in a temporary directory, loads it with ctypes and compares it with torch; writes nothing elsewhere.

Run with Debian's /usr/bin/python3 (python3-torch). Errors are normalised: max|ours - torch| / max|torch|.
"""
import ctypes
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

SRC = os.environ.get("DG_SOURCE_DIR") or os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
TOL = 1e-5

passed = 0
failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name} {detail}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def nerr(ours, ref):
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    scale = max(np.abs(ref).max(), 1e-30)
    return float(np.abs(ours - ref).max() / scale)


def close(name, ours, ref, tol=TOL):
    e = nerr(ours, ref)
    check(name, e <= tol, f"(normalised error {e:.3g})")


# torch's vectorised CPU kernels fuse a·b + c where the CPU has FMA, as kernels/math/optim.h always
# does (fmaf): there the optimizers must be bit-identical to torch.optim, as the README says
FMA = any("fma" in l.split() for l in open("/proc/cpuinfo") if l.startswith("flags"))


def close_step(name, w, ref, w0):
    """The displacement w − w0 to TOL, allowing for the float rounding of w itself (8 ulp of the
    largest weight: 5 steps, each rounding w once); bit for bit on a CPU with FMA."""
    err = float(np.abs(w.astype(np.float64) - ref).max())
    bound = TOL * float(np.abs(ref.astype(np.float64) - w0).max()) + 8 * float(np.spacing(np.abs(ref).max()))
    ulps = int(np.abs(w.view(np.int32).astype(np.int64) - ref.view(np.int32).astype(np.int64)).max())
    check(name, err <= bound and (ulps == 0 or not FMA), f"(max |dw - torch| {err:.3g}, bound {bound:.3g}; "
          + ("bit-identical to torch)" if ulps == 0 else f"max {ulps} ulp from torch{', FMA: must be 0' if FMA else ''})"))


def f32(x):
    """A value as a float kernel sees it (the batch-norm and loss kernels take floats). The optimizers'
    hyperparameters go to torch as the Python doubles a user types: torch rounds them to float only
    after computing its scalars (1 − β, lr/(1 − β1ᵗ), 1 − lr·wd), and so must dnnguard."""
    return float(np.float32(x))


def build(tmp):
    lib = os.path.join(tmp, "libdgtest.so")
    srcs = [os.path.join(SRC, "kernels", "cpu", f) for f in ("optim.c", "batchnorm.c", "loss.c", "memory.c")]
    cmd = ["cc", "-std=c11", "-shared", "-fPIC", "-fopenmp", "-O2", "-march=native", "-Wall", "-Wextra",
           "-D_POSIX_C_SOURCE=200809L", "-I" + SRC] + srcs + ["-lm", "-o", lib]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(" ".join(cmd))
        print(r.stdout + r.stderr)
        print("0 passed, 1 failed")
        sys.exit(1)
    L = ctypes.CDLL(lib)
    fp, ip = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_int32)
    f, d, i, z = ctypes.c_float, ctypes.c_double, ctypes.c_int, ctypes.c_size_t
    L.dg_cpu_sgd_step.argtypes = [z, fp, fp, fp, f, f, f, i, i]
    L.dg_cpu_adam_step.argtypes = [z, fp, fp, fp, fp, d, d, d, f, d, i, i]  # lr, betas, wd as typed
    L.dg_cpu_bn_fwd_train.argtypes = [i, i, i, fp, fp, fp, fp, fp, f, f, fp, fp, fp]
    L.dg_cpu_bn_fwd_eval.argtypes = [i, i, i, fp, fp, fp, fp, fp, f, fp]
    L.dg_cpu_bn_bwd.argtypes = [i, i, i, fp, fp, fp, fp, fp, fp, i, fp, fp]
    L.dg_cpu_softmax_xent.argtypes = [i, i, fp, ip, fp, fp, fp, f, f]
    for fn in ("dg_cpu_sgd_step", "dg_cpu_adam_step", "dg_cpu_bn_fwd_train", "dg_cpu_bn_fwd_eval",
               "dg_cpu_bn_bwd", "dg_cpu_softmax_xent"):
        getattr(L, fn).restype = None
    return L


def ptr(a):
    if a is None:
        return None
    assert a.flags["C_CONTIGUOUS"]
    t = ctypes.c_int32 if a.dtype == np.int32 else ctypes.c_float
    assert a.dtype in (np.float32, np.int32)
    return a.ctypes.data_as(ctypes.POINTER(t))


def test_sgd(L, rng):
    n, lr = 4099, 0.1
    for momentum in (0.0, 0.9):
        for nesterov in ((False, True) if momentum else (False,)):
            for wd in (0.0, 5e-4):
                mom = momentum
                w0 = rng.standard_normal(n).astype(np.float32)
                grads = [rng.standard_normal(n).astype(np.float32) for _ in range(5)]
                p = torch.nn.Parameter(torch.from_numpy(w0.copy()))
                opt = torch.optim.SGD([p], lr=lr, momentum=mom, nesterov=nesterov, weight_decay=wd)
                w, buf = w0.copy(), np.full(n, 7.0, np.float32)  # garbage: the first step overwrites it
                for t, g in enumerate(grads):
                    p.grad = torch.from_numpy(g.copy())
                    opt.step()
                    L.dg_cpu_sgd_step(n, ptr(w), ptr(g), ptr(buf) if mom else None, lr, mom, wd,
                                      int(nesterov), int(t == 0))
                ref = p.detach().numpy()
                name = f"sgd momentum={momentum} nesterov={nesterov} wd={wd:g}"
                close(name + " w", w, ref)
                close_step(name + " step", w, ref, w0)
                if mom:
                    close(name + " momentum_buffer", buf, opt.state[p]["momentum_buffer"].numpy())


def test_adam(L, rng):
    n = 4099
    for kind, lr, wd, gscale in (("adam", 1e-3, 0.0, 1.0), ("adam", 1e-3, 5e-4, 1.0), ("adam", 1e-2, 0.0, 1e-7),
                                 ("adamw", 1e-3, 1e-2, 1.0), ("adamw", 1e-1, 0.5, 10.0), ("adamw", 1e-2, 0.0, 1e-7)):
        b1, b2, eps = 0.9, 0.999, 1e-8  # torch's defaults, as doubles
        w0 = rng.standard_normal(n).astype(np.float32)
        grads = [(rng.standard_normal(n) * gscale).astype(np.float32) for _ in range(5)]
        p = torch.nn.Parameter(torch.from_numpy(w0.copy()))
        cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
        opt = cls([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
        w, m, v = w0.copy(), np.zeros(n, np.float32), np.zeros(n, np.float32)
        for t, g in enumerate(grads, start=1):
            p.grad = torch.from_numpy(g.copy())
            opt.step()
            L.dg_cpu_adam_step(n, ptr(w), ptr(g), ptr(m), ptr(v), lr, b1, b2, eps, wd, int(kind == "adamw"), t)
        ref, st = p.detach().numpy(), opt.state[p]
        name = f"{kind} lr={lr:g} wd={wd:g} grad-scale={gscale:g}"
        close(name + " w", w, ref)
        close_step(name + " step", w, ref, w0)
        close(name + " exp_avg", m, st["exp_avg"].numpy())
        close(name + " exp_avg_sq", v, st["exp_avg_sq"].numpy())


def test_batchnorm(L, rng):
    for shape in ((4, 3, 5, 5), (1, 3, 4, 4), (16, 8, 1, 1)):
        n, c, h, w_ = shape
        hw = h * w_
        momentum, eps = f32(0.1), f32(1e-5)
        x = (rng.standard_normal(shape) * 2 + rng.standard_normal((1, c, 1, 1)) * 3).astype(np.float32)
        gamma = rng.uniform(0.5, 1.5, c).astype(np.float32)
        beta = rng.uniform(-0.5, 0.5, c).astype(np.float32)
        rm0 = rng.uniform(-0.2, 0.2, c).astype(np.float32)
        rv0 = rng.uniform(0.5, 1.5, c).astype(np.float32)
        dy = rng.standard_normal(shape).astype(np.float32)

        xt = torch.from_numpy(x.copy()).requires_grad_(True)
        gt = torch.from_numpy(gamma.copy()).requires_grad_(True)
        bt = torch.from_numpy(beta.copy()).requires_grad_(True)
        rmt, rvt = torch.from_numpy(rm0.copy()), torch.from_numpy(rv0.copy())
        yt = F.batch_norm(xt, rmt, rvt, gt, bt, training=True, momentum=momentum, eps=eps)
        yt.backward(torch.from_numpy(dy))

        y, rm, rv = np.zeros_like(x), rm0.copy(), rv0.copy()
        sm, si = np.zeros(c, np.float32), np.zeros(c, np.float32)
        L.dg_cpu_bn_fwd_train(n, c, hw, ptr(x), ptr(gamma), ptr(beta), ptr(rm), ptr(rv), momentum, eps,
                              ptr(y), ptr(sm), ptr(si))
        dx, dg, db = np.full_like(x, np.nan), np.zeros(c, np.float32), np.zeros(c, np.float32)
        L.dg_cpu_bn_bwd(n, c, hw, ptr(x), ptr(gamma), ptr(sm), ptr(si), ptr(dy), ptr(dx), 0, ptr(dg), ptr(db))

        name = f"batch_norm train {shape}"
        close(name + " y", y, yt.detach().numpy())
        close(name + " running_mean", rm, rmt.numpy())
        close(name + " running_var", rv, rvt.numpy())
        close(name + " dx", dx, xt.grad.numpy())
        close(name + " dgamma", dg, gt.grad.numpy())
        close(name + " dbeta", db, bt.grad.numpy())

        ye = np.zeros_like(x)
        L.dg_cpu_bn_fwd_eval(n, c, hw, ptr(x), ptr(gamma), ptr(beta), ptr(rm0), ptr(rv0), eps, ptr(ye))
        ref = F.batch_norm(torch.from_numpy(x), torch.from_numpy(rm0.copy()), torch.from_numpy(rv0.copy()),
                           torch.from_numpy(gamma), torch.from_numpy(beta), training=False, eps=eps)
        close(f"batch_norm eval {shape} y", ye, ref.numpy())


def test_cross_entropy(L, rng):
    cases = []
    logits = (rng.standard_normal((32, 10)) * 3).astype(np.float32)
    cases.append(("random", logits, rng.integers(0, 10, 32).astype(np.int32)))
    logits = (rng.standard_normal((5, 1000)) * 5).astype(np.float32)
    cases.append(("1000 classes", logits, rng.integers(0, 1000, 5).astype(np.int32)))
    big = np.array([[1e4, -1e4, 0, 9999, -9999, 5000, 1e4, -1, 1, 2],
                    [-1e4] * 9 + [-9990],
                    [1e4] * 10], np.float32)
    cases.append(("logits +-1e4", big, np.array([6, 9, 4], np.int32)))
    cases += [(name + ", label smoothing 0.1", z, lab, 0.1) for name, z, lab in cases[:2]]
    cases.append(("1000 classes, label smoothing 0.4", logits, cases[1][2], 0.4))
    for name, z, lab, *smooth in cases:
        n, k = z.shape
        eps = f32(smooth[0]) if smooth else 0.0
        probs, loss, dz = np.zeros_like(z), np.zeros(n, np.float32), np.full_like(z, 123.0)
        L.dg_cpu_softmax_xent(n, k, ptr(z), ptr(lab), ptr(probs), ptr(loss), ptr(dz), f32(1.0 / n), eps)
        zt = torch.from_numpy(z.copy()).requires_grad_(True)
        lt = torch.from_numpy(lab.astype(np.int64))
        mean = F.cross_entropy(zt, lt, label_smoothing=eps)
        mean.backward()
        per = F.cross_entropy(zt.detach(), lt, reduction="none", label_smoothing=eps)
        close(f"cross_entropy {name} loss", loss, per.numpy())
        close(f"cross_entropy {name} mean loss", np.float64(loss).mean(), mean.item())
        close(f"cross_entropy {name} dlogits", dz, zt.grad.numpy())
        close(f"cross_entropy {name} probs", probs, torch.softmax(zt.detach(), 1).numpy())


def main():
    torch.manual_seed(0)
    rng = np.random.default_rng(1234)
    with tempfile.TemporaryDirectory(prefix="dg_optim_torch_") as tmp:
        L = build(tmp)
        test_sgd(L, rng)
        test_adam(L, rng)
        test_batchnorm(L, rng)
        test_cross_entropy(L, rng)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
