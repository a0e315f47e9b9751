"""tests/test_net_walk_torch.py — the forward and backward walks of host/net.c against PyTorch on
a small net holding every node kind (tests/tool_net_walk.c), in the three modes: training (batch
statistics + dropout with dnnguard's mask), batch statistics without dropout, and eval (frozen
batch norm, the backward that C&W and relevance checks use). Loss, every parameter gradient and
the input gradient must agree to 1e-5 (normalised)."""
import os
import subprocess
import sys
import tempfile

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

TOOL = os.environ.get("DG_TOOL_NET_WALK", "./tool_net_walk")
passed = failed = 0


def check(cond, what):
    global passed, failed
    passed += bool(cond)
    failed += not cond
    print(("ok   " if cond else "FAIL ") + what)


def torch_walk(t, mode):
    train_bn, dropout = bool(mode & 1), bool(mode & 2)
    P = {k: t[k].clone().requires_grad_("running" not in k)
         for k in t if not k.startswith("grad.") and k not in ("input", "input.grad", "mask", "labels", "loss")}
    x = t["input"].clone().requires_grad_(True)

    def bn(h, name):
        return F.batch_norm(h, P[name + ".running_mean"].clone(), P[name + ".running_var"].clone(),
                            P[name + ".weight"], P[name + ".bias"], training=train_bn, momentum=0.1, eps=1e-5)

    h = F.relu(bn(F.conv2d(x, P["conv1.weight"], P["conv1.bias"], padding=1), "bn1"))
    p1 = F.max_pool2d(h, 3, 2, 1)
    h = F.relu(bn(F.conv2d(p1, P["block.conv.weight"], None, padding=1), "block.bn") + p1)
    h = F.avg_pool2d(h, 2, 1).flatten(1)
    if dropout:
        h = h * t["mask"]
    h = F.relu(F.linear(h, P["fc1.weight"], P["fc1.bias"]))
    loss = F.cross_entropy(F.linear(h, P["fc2.weight"], P["fc2.bias"]), t["labels"])
    loss.backward()
    return loss, P, x


def nerr(a, b):
    return float((a.double() - b.double()).norm() / max(b.double().norm(), 1e-12))


tmp = tempfile.mkdtemp(prefix="dg-walk-")
for mode, label in [(3, "train (batch statistics, dropout)"), (1, "batch statistics"), (0, "eval")]:
    out = os.path.join(tmp, f"walk{mode}.safetensors")
    r = subprocess.run([TOOL, str(mode), out], capture_output=True, text=True)
    check(r.returncode == 0, f"{label}: driver ran {r.stderr.strip()}")
    if r.returncode:
        continue
    t = {k: torch.tensor(v) for k, v in st_io.read(out).items()}
    if mode & 2:
        dropped = int((t["mask"] == 0).sum())
        check(0 < dropped < t["mask"].numel(), f"{label}: dropout dropped {dropped} of {t['mask'].numel()}")
    loss, P, x = torch_walk(t, mode)
    check(abs(loss.item() - t["loss"].item()) <= 1e-5 * abs(loss.item()), f"{label}: loss {t['loss'].item()} vs {loss.item()}")
    worst = ("", 0.0)
    for name, p in P.items():
        if p.grad is None:
            continue
        if mode & 1 and name == "conv1.bias":
            # batch norm right after makes this gradient zero up to rounding: compare absolutely
            check(float(t["grad." + name].abs().max()) < 1e-6, f"{label}: conv1.bias gradient is ~0 before batch norm")
            continue
        e = nerr(t["grad." + name], p.grad)
        if e > worst[1]:
            worst = (name, e)
        check(e <= 1e-5, f"{label}: d loss / d {name}: {e:.2e}")
    e = nerr(t["input.grad"], x.grad)
    check(e <= 1e-5, f"{label}: d loss / d input: {e:.2e}")

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
