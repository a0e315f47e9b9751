"""tests/torch_dtd.py — an independent PyTorch reference ("oracle") of the Deep Taylor Decomposition
relevance pass that docs/infip.md ("The relevance pass") specifies for host/relevance.c: z^B at the
layer reading the net input, z+ at every other conv/linear (bias ignored), batch norm folded into
the conv it follows when that conv's output is read by the batch norm alone (else passed through),
ReLU/dropout/flatten unchanged, max pool winner-take-all, average pool proportional, residual adds
split in proportion to each operand. Written in plain autograd from the spec, independently of the
C code, to compare dnnguard's output with (float32, 1e-4) and to check itself (float64).

API:
    relevance(name, module, x, mean, std, eps=1e-9, inject="one", classes=None, dtype=torch.float32,
              fold_wrn_stem=True, notes=None, stats=None)
        -> (R_input [n, c, h, w], predictions [n] long, logits [n, K])
    fingerprint_images(R_input, lam) -> uint8 numpy [n, h, w]
    bn_treatment(name, module) -> {bn module name: "folded into <conv>" | "pass-through"}
Run it (`/usr/bin/python3 tests/torch_dtd.py [--full]`) for the self-check: conservation per net,
each rule against a dense loop formulation, float32 against float64 (--full adds vgg16 at 224x224).

Test and bench code only: no part of dnnguard, touches no file."""
import copy
import os
import re
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_nets  # noqa: E402


# ---------------------------------------------------------------------------------------------
# The rules. Every one takes the layer's forward input(s) (detached values), the relevance R of
# its output, and returns the relevance of its input(s), in the standard autograd formulation.
# ---------------------------------------------------------------------------------------------
def stab(z, eps):
    """z + eps where z >= 0, z - eps elsewhere."""
    return torch.where(z >= 0, z + eps, z - eps)


def ratio(R, z, eps):
    """s = R/stab(z), and 0 where z is exactly 0: there every term of z is 0 (an add: a = -b), so R
    reaches no input whatever s is (docs/infip.md); R/eps would only carry its rounding into the
    other outputs' shares."""
    return torch.where(z == 0, torch.zeros_like(R), R / stab(z, eps))


def _leaf(t):
    return t.detach().clone().requires_grad_(True)


def _lost(R, z):
    """Per image, the relevance at outputs whose denominator is exactly 0 (stab(0) = eps): in the z
    rules every term of that z_j is then 0 (x >= 0, or l <= x <= h for z^B), at an add a = -b and
    the two shares cancel; either way this R_j reaches no input — the one place a rule does not
    conserve."""
    return (R * (z == 0)).detach().flatten(1).sum(1)


def zrule(f, x, R, eps, track=None):
    """The proportional rule for a map f that is linear in x (no offset): z = f(x), s = ratio(R, z),
    c = (df/dx)^T s, R_in = x * c. With f = conv/linear on W+ this is the z+ rule; with f an
    average pool, the proportional pool rule."""
    with torch.enable_grad():
        xl = _leaf(x)
        z = f(xl)
        s = ratio(R, z, eps).detach()
        (c,) = torch.autograd.grad((z * s).sum(), xl)
    if track is not None:
        track(_lost(R, z))
    return xl.detach() * c


def zbrule(f_plus, f_minus, x, low, high, R, eps, track=None):
    """The z^B rule, z = x W - l W+ - h W-, as z = f_plus(x - low) + f_minus(x - high), s = ratio(R, z),
    R_in = (x - low) * c_plus + (x - high) * c_minus with c_plus = W+ s, c_minus = W- s (the gradients
    of (z * s).sum() w.r.t. the two leaves). Equal in exact arithmetic; both terms are >= 0 when
    low <= x <= high, so a z that is 0 in exact arithmetic is 0 in floating point too (the three-term
    form leaves a residue there, and R over it is amplified). _dense_zb checks it against the
    three-term form."""
    with torch.enable_grad():
        dl, dh = _leaf(x - low), _leaf(x - high)
        z = f_plus(dl) + f_minus(dh)
        s = ratio(R, z, eps).detach()
        gl, gh = torch.autograd.grad((z * s).sum(), (dl, dh))
    if track is not None:
        track(_lost(R, z))
    return dl.detach() * gl + dh.detach() * gh


def _conv_fn(conv, weight):
    assert conv.padding_mode == "zeros" and isinstance(conv.padding, tuple)
    w = weight.detach()
    return lambda t: F.conv2d(t, w, None, conv.stride, conv.padding, conv.dilation, conv.groups)


def zplus_conv(conv, weight, x, R, eps, track=None):
    """z+ for a conv module's geometry with the given (possibly folded) weight; bias ignored."""
    return zrule(_conv_fn(conv, weight.clamp(min=0)), x, R, eps, track)


def zb_conv(conv, weight, x, low, high, R, eps, track=None):
    return zbrule(_conv_fn(conv, weight.clamp(min=0)), _conv_fn(conv, weight.clamp(max=0)), x, low, high, R, eps,
                  track)


def zplus_linear(weight, x, R, eps, track=None):
    wp = weight.detach().clamp(min=0)
    return zrule(lambda t: F.linear(t, wp), x, R, eps, track)


def zb_linear(weight, x, low, high, R, eps, track=None):
    w = weight.detach()
    wp, wm = w.clamp(min=0), w.clamp(max=0)
    return zbrule(lambda t: F.linear(t, wp), lambda t: F.linear(t, wm), x, low, high, R, eps, track)


TIE = 1e-5  # max-pool inputs within TIE * |max| of their window's maximum share its relevance


def _pool_geometry(pool):
    """(k, stride, pad) of an nn.MaxPool2d with square, int parameters"""
    as_int = lambda v: v if isinstance(v, int) else v[0]  # noqa: E731
    k, s, p = as_int(pool.kernel_size), as_int(pool.stride), as_int(pool.padding)
    assert pool.dilation in (1, (1, 1)) and not pool.ceil_mode, "only plain max pools"
    return k, s, p


def maxpool_rule(pool, x, R, tie=None):
    """Winner-take-all with ties shared: R_j goes in equal parts to the inputs of its window within
    tie * |max| of the window's maximum (padding never ties), summed where windows overlap.
    tie defaults to the module's TIE, read at call time (so a test can move the limit)."""
    tie = TIE if tie is None else tie
    k, s, p = _pool_geometry(pool)
    n, c, h, w = x.shape
    xp = F.pad(x, (p, p, p, p), value=float("-inf")).reshape(n * c, 1, h + 2 * p, w + 2 * p)
    cols = F.unfold(xp, k, stride=s)  # [n·c, k·k, windows]
    m = cols.max(dim=1, keepdim=True).values
    tied = (cols >= m - tie * m.abs()).to(x.dtype)
    share = tied / tied.sum(dim=1, keepdim=True) * R.reshape(n * c, 1, -1)
    out = F.fold(share, (h + 2 * p, w + 2 * p), k, stride=s)[:, :, p:p + h, p:p + w]
    return out.reshape(n, c, h, w)


CANCEL = 1e-5  # an add output within CANCEL * (|a| + |b|) of 0 is a near-cancellation


def add_rule(a, b, R, eps, track=None, cancel=None):
    """y = a + b: R_a = a R / stab(y), R_b = b R / stab(y) (0 where y is exactly 0)."""
    y = a + b
    q = ratio(R, y, eps)
    ra, rb = a * q, b * q
    if track is not None:
        track(_lost(R, y))
    if cancel is not None:  # where the split is ill-conditioned: y's sign (and so R) rests on rounding
        cancel((y.abs() <= CANCEL * (a.abs() + b.abs())).flatten(1).sum(1))
    return ra, rb


def fold_bn(weight, bn):
    """W'_o = W_o * gamma_o / sqrt(running_var_o + eps) (the shift is a bias, which z+/z^B ignore)."""
    a = bn.weight.detach() / torch.sqrt(bn.running_var.detach() + bn.eps)
    return weight.detach() * a.view(-1, *([1] * (weight.dim() - 1)))


def pixel_affine(mean, std):
    """dnnguard's input of a byte b per channel, b * scale + shift, both float32 as
    kernels/math/pixel.h computes them (scale = 1/(255 std), shift = -mean/std)"""
    mean = np.asarray(mean, np.float32).reshape(-1)
    std = np.asarray(std, np.float32).reshape(-1)
    return np.float32(1) / (np.float32(255) * std), -mean / std


class _Ctx:
    """What a walker needs besides the module: eps and the input bounds l, h (input-shaped): the
    inputs of pixels 0 and 255, in float32 as dnnguard computes them, so that a black or white key
    pixel (reference_keys) sits on its bound exactly."""

    def __init__(self, x, mean, std, eps):
        c = x.shape[1]
        scale, shift = pixel_affine(mean, std)
        if scale.size != c:
            raise ValueError(f"mean/std need {c} entries, got {np.size(mean)}/{np.size(std)}")
        lo = torch.from_numpy(np.float32(0) * scale + shift).to(x.dtype).to(x.device).view(1, c, 1, 1)
        hi = torch.from_numpy(np.float32(255) * scale + shift).to(x.dtype).to(x.device).view(1, c, 1, 1)
        self.low = lo.expand_as(x).contiguous()
        self.high = hi.expand_as(x).contiguous()
        self.eps = eps
        self.names = {}
        self.lost = None  # {label: per-image lost relevance} when tracking
        self.cancellations = None  # per-image count of near-cancelling add outputs when tracking

    def count_cancellations(self, per_image):
        if self.cancellations is not None:
            self.cancellations += per_image

    def track(self, mod_or_label):
        """A callback that books a rule's lost relevance under a label (module name), or None."""
        if self.lost is None:
            return None
        label = mod_or_label if isinstance(mod_or_label, str) else self.names.get(id(mod_or_label), "?")

        def book(v):
            self.lost[label] = self.lost.get(label, 0) + v
        return book


# ---------------------------------------------------------------------------------------------
# Sequential walker (LeNet-5, vgg16-cifar, vgg16). Ops:
#   ("conv", conv, bn|None)  ("linear", linear)  ("relu",)  ("dropout",)  ("flatten",)
#   ("maxpool", nn.MaxPool2d)  ("avgpool", fn)  — fn applies the pool and must be linear in x
# The first conv/linear (only flattens before it) takes z^B; bn after a conv is folded (in these
# chains the conv's output is read by its bn alone).
# ---------------------------------------------------------------------------------------------
def _walk_sequential(ops, x, ctx, inject):
    acts = [x]
    with torch.no_grad():
        for op in ops:
            t = acts[-1]
            kind = op[0]
            if kind == "conv":
                t = op[1](t)
                if op[2] is not None:
                    t = op[2](t)
            elif kind == "linear":
                t = op[1](t)
            elif kind == "relu":
                t = F.relu(t)
            elif kind in ("dropout",):
                pass  # eval: identity
            elif kind == "flatten":
                t = torch.flatten(t, 1)
            elif kind in ("maxpool", "avgpool"):
                t = op[1](t)
            else:
                raise ValueError(kind)
            acts.append(t)
    logits = acts[-1]
    first = next(i for i, op in enumerate(ops) if op[0] in ("conv", "linear"))
    assert all(op[0] == "flatten" for op in ops[:first]), "the first weighted layer must read the input"
    R = inject(logits)
    for i in range(len(ops) - 1, -1, -1):
        op, xin = ops[i], acts[i]
        kind = op[0]
        if kind == "conv":
            w = op[1].weight if op[2] is None else fold_bn(op[1].weight, op[2])
            if i == first:
                R = zb_conv(op[1], w, xin, ctx.low, ctx.high, R, ctx.eps, ctx.track(op[1]))
            else:
                R = zplus_conv(op[1], w, xin, R, ctx.eps, ctx.track(op[1]))
        elif kind == "linear":
            if i == first:
                low = ctx.low.flatten(1) if xin.dim() == 2 else ctx.low
                high = ctx.high.flatten(1) if xin.dim() == 2 else ctx.high
                R = zb_linear(op[1].weight, xin, low, high, R, ctx.eps, ctx.track(op[1]))
            else:
                R = zplus_linear(op[1].weight, xin, R, ctx.eps, ctx.track(op[1]))
        elif kind in ("relu", "dropout"):
            pass
        elif kind == "flatten":
            R = R.reshape(xin.shape)
        elif kind == "maxpool":
            R = maxpool_rule(op[1], xin, R)
        elif kind == "avgpool":
            R = zrule(op[1], xin, R, ctx.eps, ctx.track(f"avgpool before op {i}"))
    return R, logits


def _ops_lenet5(m):
    pool = nn.MaxPool2d(2)  # as LeNet5.forward's F.max_pool2d(t, 2)
    return [("conv", m.conv1, None), ("relu",), ("maxpool", pool), ("conv", m.conv2, None), ("relu",),
            ("maxpool", pool), ("flatten",), ("linear", m.fc1), ("relu",), ("linear", m.fc2), ("relu",),
            ("linear", m.fc3)]


def _ops_features(seq, notes):
    ops, mods, i = [], list(seq), 0
    while i < len(mods):
        mod = mods[i]
        if isinstance(mod, nn.Conv2d):
            bn = mods[i + 1] if i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d) else None
            ops.append(("conv", mod, bn))
            i += 2 if bn is not None else 1
            continue
        if isinstance(mod, nn.ReLU):
            ops.append(("relu",))
        elif isinstance(mod, nn.MaxPool2d):
            ops.append(("maxpool", mod))
        elif isinstance(mod, nn.AvgPool2d):
            k, s, p = (mod.kernel_size, mod.stride, mod.padding)
            if k in (1, (1, 1)) and s in (1, (1, 1)) and p in (0, (0, 0)):
                notes.append("AvgPool2d(1, 1) is the identity: no rule (dnnguard has no node)")
            else:
                ops.append(("avgpool", mod))
        elif isinstance(mod, nn.Dropout):
            ops.append(("dropout",))
        elif isinstance(mod, nn.Linear):
            ops.append(("linear", mod))
        else:
            raise ValueError(f"unexpected module {mod}")
        i += 1
    return ops


def _ops_vgg16_cifar(m, notes):
    return _ops_features(m.features, notes) + [("flatten",), ("linear", m.classifier)]


def _ops_vgg16(m, x, notes):
    ops = _ops_features(m.features, notes)
    with torch.no_grad():
        fm = m.features(x[:1])
    fh, fw = fm.shape[-2:]
    out = m.avgpool.output_size
    out = (out, out) if isinstance(out, int) else tuple(out)
    if (fh, fw) == out:
        notes.append(f"AdaptiveAvgPool2d{out} on a {fh}x{fw} map is the identity: no rule (dnnguard has no node)")
    else:
        if fh % out[0] or fw % out[1] or fh < out[0]:
            notes.append(f"AdaptiveAvgPool2d{out} on a {fh}x{fw} map: uneven/overlapping windows, taken as the "
                         "proportional rule over PyTorch's adaptive pool (dnnguard refuses this size)")
        ops.append(("avgpool", m.avgpool))
    return ops + [("flatten",)] + _ops_features(m.classifier, notes)


# ---------------------------------------------------------------------------------------------
# Wide ResNet (pre-activation). Block: o = relu(bn1(x)); y = conv2(relu(bn2(conv1(o))));
# out = (x | convShortcut(o)) + y. bn2 folds into conv1 (conv1's output is read by bn2 alone).
# bn1 of a block reads x: an add's output (pass-through), or the stem conv's output — read by that
# bn1 alone when the first block has a shortcut conv (widths differ, K != 1), so folded into the
# stem by the spec's rule; read also by the identity add when the widths are equal (K == 1): pass.
# The final bn1 reads the last add: pass-through.
# ---------------------------------------------------------------------------------------------
def _wrn_blocks(m):
    return [b for g in (m.block1, m.block2, m.block3) for b in g.layer]


def _wrn_stem_folded(m, fold_wrn_stem):
    return fold_wrn_stem and not _wrn_blocks(m)[0].equal


def _walk_wrn(m, x, ctx, inject, fold_wrn_stem=True):
    eps = ctx.eps
    rec = []
    with torch.no_grad():
        stem = m.conv1(x)
        cur = stem
        for b in _wrn_blocks(m):
            o = b.relu1(b.bn1(cur))
            w = b.relu2(b.bn2(b.conv1(o)))
            y = b.conv2(w)
            sc = cur if b.equal else b.convShortcut(o)
            rec.append((b, cur, o, w, y, sc))
            cur = sc + y
        f = m.relu(m.bn1(cur))
        p = F.adaptive_avg_pool2d(f, 1)
        flat = p.flatten(1)
        logits = m.fc(flat)
    R = inject(logits)
    R = zplus_linear(m.fc.weight, flat, R, eps, ctx.track(m.fc)).reshape(p.shape)
    R = zrule(lambda t: F.adaptive_avg_pool2d(t, 1), f, R, eps, ctx.track("global avgpool"))  # global average pool
    # relu, final bn1 (after an add): unchanged
    for b, xin, o, w, y, sc in reversed(rec):
        R_sc, R_y = add_rule(sc, y, R, eps, ctx.track(ctx.names[id(b)] + " add"), ctx.count_cancellations)
        R_w = zplus_conv(b.conv2, b.conv2.weight, w, R_y, eps, ctx.track(b.conv2))
        R_o = zplus_conv(b.conv1, fold_bn(b.conv1.weight, b.bn2), o, R_w, eps,
                         ctx.track(b.conv1))  # relu2 unchanged, bn2 folded
        if b.equal:
            R = R_o + R_sc  # relu1, bn1 unchanged; identity branch adds its share to x
        else:
            R = R_o + zplus_conv(b.convShortcut, b.convShortcut.weight, o, R_sc, eps,
                                 ctx.track(b.convShortcut))  # both read o
    b0 = _wrn_blocks(m)[0]
    w_stem = fold_bn(m.conv1.weight, b0.bn1) if _wrn_stem_folded(m, fold_wrn_stem) else m.conv1.weight
    R = zb_conv(m.conv1, w_stem, x, ctx.low, ctx.high, R, eps, ctx.track(m.conv1))
    return R, logits


# ---------------------------------------------------------------------------------------------
# ResNet-18 (torchvision BasicBlock, ImageNet or CIFAR stem): every conv is followed by its own bn
# (conv1/bn1, conv2/bn2, downsample.0/.1, stem conv1/bn1), all folded. Block:
# y = bn2(conv2(relu(bn1(conv1(x))))) + (x | downsample(x)); out = relu(y).
# ---------------------------------------------------------------------------------------------
def _walk_resnet(m, x, ctx, inject):
    eps = ctx.eps
    with torch.no_grad():
        a = m.relu(m.bn1(m.conv1(x)))
        has_pool = not isinstance(m.maxpool, nn.Identity)
        cur = m.maxpool(a) if has_pool else a
        rec = []
        for layer in (m.layer1, m.layer2, m.layer3, m.layer4):
            for b in layer:
                t3 = b.relu(b.bn1(b.conv1(cur)))
                t5 = b.bn2(b.conv2(t3))
                idn = cur if b.downsample is None else b.downsample(cur)
                rec.append((b, cur, t3, t5, idn))
                cur = b.relu(t5 + idn)
        p = m.avgpool(cur)
        flat = torch.flatten(p, 1)
        logits = m.fc(flat)
    R = inject(logits)
    R = zplus_linear(m.fc.weight, flat, R, eps, ctx.track(m.fc)).reshape(p.shape)
    R = zrule(lambda t: F.adaptive_avg_pool2d(t, 1), cur, R, eps,
              ctx.track("global avgpool"))  # global average pool (always a node in C)
    for b, xin, t3, t5, idn in reversed(rec):
        # relu after the add: unchanged
        R_a, R_b = add_rule(t5, idn, R, eps, ctx.track(ctx.names[id(b)] + " add"), ctx.count_cancellations)
        R_t3 = zplus_conv(b.conv2, fold_bn(b.conv2.weight, b.bn2), t3, R_a, eps, ctx.track(b.conv2))
        R = zplus_conv(b.conv1, fold_bn(b.conv1.weight, b.bn1), xin, R_t3, eps, ctx.track(b.conv1))  # relu unchanged
        if b.downsample is None:
            R = R + R_b
        else:
            ds_conv, ds_bn = b.downsample[0], b.downsample[1]
            R = R + zplus_conv(ds_conv, fold_bn(ds_conv.weight, ds_bn), xin, R_b, eps, ctx.track(ds_conv))
    if has_pool:
        R = maxpool_rule(m.maxpool, a, R)
    R = zb_conv(m.conv1, fold_bn(m.conv1.weight, m.bn1), x, ctx.low, ctx.high, R, eps, ctx.track(m.conv1))
    return R, logits


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------
def _argmax_lowest(logits):
    """The argmax, the lowest index on a tie (explicitly, not relying on torch.argmax)."""
    k = logits.shape[1]
    idx = torch.arange(k, device=logits.device).expand_as(logits)
    top = logits.max(dim=1, keepdim=True).values
    return torch.where(logits == top, idx, torch.full_like(idx, k)).min(dim=1).values


def relevance(name, module, x, mean, std, eps=1e-9, inject="one", classes=None, dtype=torch.float32,
              fold_wrn_stem=True, notes=None, stats=None):
    """DTD relevance of the input per docs/infip.md. name: as torch_nets.build; module: the net (copied,
    put in eval mode, cast to dtype; the caller's module is untouched); x: [n, c, h, w] normalised
    input; mean/std: per-channel normalisation (for the z^B bounds); inject: "one" or "logit";
    classes: optional n class indices to inject at instead of the prediction.
    fold_wrn_stem: for wrn-D-K with K != 1, fold block1.layer.0.bn1 into the stem conv (the spec's
    rule: the stem's output is read by that bn alone); False passes it through instead.
    notes: optional list, receives remarks about identity / unusual pools.
    stats: optional dict; receives "lost" (per image [n], the relevance that reached no input: R_j
    at outputs whose rule denominator z_j is exactly 0) and "lost_by_layer" ({module name: [n]}).
    Then sum(R_input) = v - lost up to eps (each layer keeps R_j z_j / stab(z_j)) and rounding.
    It also receives "near_cancellations" (per image [n]): add outputs within CANCEL·(|a| + |b|) of 0,
    where the split's result rests on the rounding of y.
    Returns (R_input [n, c, h, w] of dtype, predictions [n] long, logits [n, K] of dtype)."""
    if inject not in ("one", "logit"):
        raise ValueError(f"inject must be 'one' or 'logit', not {inject!r}")
    notes = [] if notes is None else notes
    m = copy.deepcopy(module).to(dtype).eval()
    for p in m.parameters():
        p.requires_grad_(False)
    dev = next(m.parameters()).device
    x = torch.as_tensor(x).detach().to(device=dev, dtype=dtype)
    ctx = _Ctx(x, mean, std, eps)
    ctx.names = {id(mod): n for n, mod in m.named_modules()}
    if stats is not None:
        ctx.lost = {}
        ctx.cancellations = torch.zeros(x.shape[0], dtype=torch.long, device=dev)
    out = {}

    def do_inject(logits):
        pred = _argmax_lowest(logits)
        t = pred if classes is None else torch.as_tensor(classes, dtype=torch.long, device=dev).reshape(-1)
        if t.numel() != logits.shape[0]:
            raise ValueError(f"classes: {t.numel()} entries for {logits.shape[0]} images")
        v = torch.ones(logits.shape[0], dtype=dtype, device=dev) if inject == "one" else \
            logits.gather(1, t.view(-1, 1)).view(-1)
        R = torch.zeros_like(logits)
        R[torch.arange(logits.shape[0], device=dev), t] = v
        out["pred"] = pred
        return R

    if name == "lenet5":
        R, logits = _walk_sequential(_ops_lenet5(m), x, ctx, do_inject)
    elif re.fullmatch(r"wrn-\d+-\d+", name):
        R, logits = _walk_wrn(m, x, ctx, do_inject, fold_wrn_stem)
    elif name == "vgg16-cifar":
        R, logits = _walk_sequential(_ops_vgg16_cifar(m, notes), x, ctx, do_inject)
    elif name == "vgg16":
        R, logits = _walk_sequential(_ops_vgg16(m, x, notes), x, ctx, do_inject)
    elif name in ("resnet18", "resnet18-cifar"):
        R, logits = _walk_resnet(m, x, ctx, do_inject)
    else:
        raise ValueError(f"unknown net {name}")
    if stats is not None:
        by = {k: v for k, v in ctx.lost.items() if bool((v != 0).any())}
        stats["lost_by_layer"] = by
        stats["lost"] = sum(by.values()) if by else torch.zeros(x.shape[0], dtype=dtype, device=dev)
        stats["near_cancellations"] = ctx.cancellations
    return R.detach(), out["pred"], logits.detach()


def reference_keys(ref):
    """the key images of a dnnguard InFIP reference folder as the net's input (normalised as dnnguard
    does), with its manifest: (x [n, c, h, w] float32 tensor, manifest dict)"""
    import json
    from PIL import Image
    man = json.load(open(os.path.join(ref, "manifest.json")))
    scale, shift = pixel_affine(man["mean"], man["std"])
    scale, shift = scale.reshape(-1, 1, 1), shift.reshape(-1, 1, 1)
    xs = []
    for k in man["keys"]:
        img = np.array(Image.open(os.path.join(ref, k["key"])), np.float32)
        img = img[None] if img.ndim == 2 else img.transpose(2, 0, 1)
        xs.append(img * scale + shift)  # float32 throughout: dnnguard's inputs to the last bit
    return torch.from_numpy(np.stack(xs)), man


def bn_treatment(name, module, fold_wrn_stem=True):
    """{batch-norm module name: 'folded into <conv name>' | 'pass-through'} as relevance() treats them."""
    names = {mod: n for n, mod in module.named_modules()}
    res = {}
    if re.fullmatch(r"wrn-\d+-\d+", name):
        blocks = _wrn_blocks(module)
        for i, b in enumerate(blocks):
            if i == 0 and _wrn_stem_folded(module, fold_wrn_stem):
                res[names[b.bn1]] = "folded into conv1"
            else:
                res[names[b.bn1]] = "pass-through"
            res[names[b.bn2]] = f"folded into {names[b.conv1]}"
        res[names[module.bn1]] = "pass-through"
        return res
    prev = None
    for n, mod in module.named_modules():
        if isinstance(mod, nn.BatchNorm2d):
            assert prev is not None
            res[n] = f"folded into {prev}"
        if isinstance(mod, nn.Conv2d):
            prev = n
    return res


def fingerprint_images(R_input, lam):
    """Image(Inf(x), λ): the relevance summed over channels (in float64), times λ, rounded to the
    nearest integer (floor(v + 0.5)), clipped to 0..255: uint8 [n, h, w]."""
    if hasattr(R_input, "detach"):
        r = R_input.detach().cpu().to(torch.float64).numpy()
    else:
        r = np.asarray(R_input, np.float64)
    v = r.sum(axis=1) * float(lam)
    return np.clip(np.floor(v + 0.5), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Self-check
# ---------------------------------------------------------------------------------------------
CIFAR_MEAN, CIFAR_STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
MNIST_MEAN, MNIST_STD = [0.1307], [0.3081]


def _randomize(model, seed, biases, neg_gamma=0.25):
    """He-uniform weights (activations keep their scale); bn gamma of random magnitude 0.5..1.5 with
    a fraction neg_gamma negative, running_var 0.5..2. biases=False: every conv/linear bias, bn beta
    and running_mean zero (folded biases vanish); True: all random."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                bound = (6.0 / mod.weight[0].numel()) ** 0.5
                mod.weight.copy_((torch.rand(mod.weight.shape, generator=g) * 2 - 1) * bound)
                if mod.bias is not None:
                    mod.bias.copy_((torch.rand(mod.bias.shape, generator=g) * 2 - 1) * 0.1 if biases else 0)
            elif isinstance(mod, nn.BatchNorm2d):
                sign = torch.where(torch.rand(mod.weight.shape, generator=g) < neg_gamma, -1.0, 1.0)
                mod.weight.copy_((torch.rand(mod.weight.shape, generator=g) + 0.5) * sign)
                mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=g) * 1.5 + 0.5)
                if biases:
                    mod.bias.copy_((torch.rand(mod.bias.shape, generator=g) * 2 - 1) * 0.5)
                    mod.running_mean.copy_(torch.randn(mod.running_mean.shape, generator=g) * 0.5)
                else:
                    mod.bias.zero_()
                    mod.running_mean.zero_()
    return model


def _inputs(name, n, hw, seed):
    (c, _, _), _ = torch_nets.default_shape(name)
    g = torch.Generator().manual_seed(seed)
    pix = torch.rand((n, c) + hw, generator=g, dtype=torch.float64)
    mean, std = (MNIST_MEAN, MNIST_STD) if c == 1 else (CIFAR_MEAN, CIFAR_STD)
    x = (pix - torch.tensor(mean, dtype=torch.float64).view(1, c, 1, 1)) / \
        torch.tensor(std, dtype=torch.float64).view(1, c, 1, 1)
    return x, mean, std


def _relerr(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


# ---- dense formulations (explicit matrices, rule formulas with loops) ----
def _probe_matrix(f, in_shape):
    """M [n_in, n_out] of a linear map f on one sample of in_shape, by unit vectors."""
    n_in = int(np.prod(in_shape))
    eye = torch.eye(n_in, dtype=torch.float64).reshape((n_in,) + tuple(in_shape))
    with torch.no_grad():
        return f(eye).reshape(n_in, -1).numpy()


def _dense_zplus(x, Wp, R, eps):
    """R_i = sum_j x_i W+_ij R_j / stab(sum_i' x_i' W+_i'j), loops over j."""
    n_in, n_out = Wp.shape
    out = np.zeros(n_in)
    for j in range(n_out):
        z = sum(x[i] * Wp[i, j] for i in range(n_in))
        zs = z + eps if z >= 0 else z - eps
        for i in range(n_in):
            out[i] += x[i] * Wp[i, j] * R[j] / zs
    return out


def _dense_zb(x, lo, hi, W, Wp, Wm, R, eps):
    n_in, n_out = W.shape
    out = np.zeros(n_in)
    for j in range(n_out):
        z = sum(x[i] * W[i, j] - lo[i] * Wp[i, j] - hi[i] * Wm[i, j] for i in range(n_in))
        zs = z + eps if z >= 0 else z - eps
        for i in range(n_in):
            out[i] += (x[i] * W[i, j] - lo[i] * Wp[i, j] - hi[i] * Wm[i, j]) * R[j] / zs
    return out


def _dense_checks(eps=1e-9):
    torch.manual_seed(1)
    res = {}
    d = torch.float64
    # z+ conv, padding 1, stride 2: 2x5x5 -> 3x3x3
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1, bias=True).to(d)
    x = torch.rand(1, 2, 5, 5, dtype=d)
    with torch.no_grad():
        zz = conv(x)
    R = torch.randn(zz.shape, dtype=d)
    Wp_mat = _probe_matrix(lambda t: F.conv2d(t, conv.weight.clamp(min=0), None, 2, 1), (2, 5, 5))
    ref = _dense_zplus(x.flatten().numpy(), Wp_mat, R.flatten().numpy(), eps)
    got = zplus_conv(conv, conv.weight, x, R, eps).flatten().numpy()
    res["z+ conv (pad 1, stride 2)"] = _relerr(got, ref)
    # z^B conv with padding (1 -> 2 channels? use 3 input channels, pad 2, stride 1)
    conv = nn.Conv2d(3, 2, 3, stride=1, padding=2, bias=True).to(d)
    mean, std = CIFAR_MEAN, CIFAR_STD
    pix = torch.rand(1, 3, 4, 4, dtype=d)
    x = (pix - torch.tensor(mean, dtype=d).view(1, 3, 1, 1)) / torch.tensor(std, dtype=d).view(1, 3, 1, 1)
    ctx = _Ctx(x, mean, std, eps)
    with torch.no_grad():
        zz = conv(x)
    R = torch.randn(zz.shape, dtype=d)
    mats = [_probe_matrix(lambda t, w=w: F.conv2d(t, w, None, 1, 2), (3, 4, 4))
            for w in (conv.weight, conv.weight.clamp(min=0), conv.weight.clamp(max=0))]
    ref = _dense_zb(x.flatten().numpy(), ctx.low.flatten().numpy(), ctx.high.flatten().numpy(), *mats,
                    R.flatten().numpy(), eps)
    got = zb_conv(conv, conv.weight, x, ctx.low, ctx.high, R, eps).flatten().numpy()
    res["z^B conv (pad 2)"] = _relerr(got, ref)
    # linear z+ and z^B (weights as matrices directly: W_ij = weight[j, i])
    lin = nn.Linear(7, 5).to(d)
    xl = torch.rand(1, 7, dtype=d)
    R = torch.randn(1, 5, dtype=d)
    Wt = lin.weight.detach().numpy().T
    res["z+ linear"] = _relerr(zplus_linear(lin.weight, xl, R, eps).flatten().numpy(),
                               _dense_zplus(xl.flatten().numpy(), np.maximum(Wt, 0), R.flatten().numpy(), eps))
    lo = torch.full((1, 7), -0.4, dtype=d) - torch.rand(1, 7, dtype=d)
    hi = torch.full((1, 7), 1.2, dtype=d) + torch.rand(1, 7, dtype=d)
    xb = lo + (hi - lo) * torch.rand(1, 7, dtype=d)
    res["z^B linear"] = _relerr(
        zb_linear(lin.weight, xb, lo, hi, R, eps).flatten().numpy(),
        _dense_zb(xb.flatten().numpy(), lo.flatten().numpy(), hi.flatten().numpy(), Wt, np.maximum(Wt, 0),
                  np.minimum(Wt, 0), R.flatten().numpy(), eps))
    # max pool 3 stride 2 pad 1 (overlapping windows, padded) on 2x7x7: winners by explicit loops,
    # the second channel flat in its top rows (exact ties share)
    x = torch.rand(1, 2, 7, 7, dtype=d)
    x[0, 1, :3] = 0.5
    mp = nn.MaxPool2d(3, 2, 1)
    with torch.no_grad():
        yy = mp(x)
    R = torch.randn(yy.shape, dtype=d)
    ref = np.zeros((2, 7, 7))
    xn, Rn = x[0].numpy(), R[0].numpy()
    for c in range(2):
        for oy in range(yy.shape[2]):
            for ox in range(yy.shape[3]):
                taps = [(oy * 2 - 1 + ky, ox * 2 - 1 + kx) for ky in range(3) for kx in range(3)]
                taps = [(iy, ix) for iy, ix in taps if 0 <= iy < 7 and 0 <= ix < 7]
                best = max(xn[c, iy, ix] for iy, ix in taps)
                winners = [(iy, ix) for iy, ix in taps if xn[c, iy, ix] >= best - TIE * abs(best)]
                for iy, ix in winners:
                    ref[c, iy, ix] += Rn[c, oy, ox] / len(winners)
    res["max pool (3, stride 2, pad 1)"] = _relerr(maxpool_rule(mp, x, R)[0].numpy(), ref)
    # avg pool 2 stride 2 (and the global average) : R_i = x_i R_j / (k^2 stab(y_j))
    x = torch.rand(1, 2, 6, 6, dtype=d)
    R = torch.randn(1, 2, 3, 3, dtype=d)
    y = F.avg_pool2d(x, 2, 2)
    ref = np.zeros((2, 6, 6))
    for c in range(2):
        for oy in range(3):
            for ox in range(3):
                yj = float(y[0, c, oy, ox])
                for ky in range(2):
                    for kx in range(2):
                        iy, ix = 2 * oy + ky, 2 * ox + kx
                        ref[c, iy, ix] += float(x[0, c, iy, ix]) * float(R[0, c, oy, ox]) / (4 * (yj + eps))
    res["avg pool (2, stride 2)"] = _relerr(zrule(lambda t: F.avg_pool2d(t, 2, 2), x, R, eps)[0].numpy(), ref)
    # vgg16's AdaptiveAvgPool2d(7) on a 14x14 map (448x448 input) is the 2x2 average
    x14, R7 = torch.rand(1, 2, 14, 14, dtype=d), torch.randn(1, 2, 7, 7, dtype=d)
    res["AdaptiveAvgPool2d(7) on 14x14 = avg pool 2"] = _relerr(
        zrule(nn.AdaptiveAvgPool2d((7, 7)), x14, R7, eps).numpy(),
        zrule(lambda t: F.avg_pool2d(t, 2, 2), x14, R7, eps).numpy())
    Rg = torch.randn(1, 2, 1, 1, dtype=d)
    yg = x.mean(dim=(2, 3))
    refg = np.array([[[float(x[0, c, i, j]) * float(Rg[0, c, 0, 0]) / (36 * (float(yg[0, c]) + eps))
                       for j in range(6)] for i in range(6)] for c in range(2)])
    res["global avg pool"] = _relerr(zrule(lambda t: F.adaptive_avg_pool2d(t, 1), x, Rg, eps)[0].numpy(), refg)
    # residual split, operands of both signs
    a, b = torch.randn(1, 3, 4, 4, dtype=d), torch.randn(1, 3, 4, 4, dtype=d)
    R = torch.randn(1, 3, 4, 4, dtype=d)
    ra, rb = add_rule(a, b, R, eps)
    an, bn_, Rn = a.numpy().ravel(), b.numpy().ravel(), R.numpy().ravel()
    den = [(an[i] + bn_[i]) + (eps if an[i] + bn_[i] >= 0 else -eps) for i in range(an.size)]
    refa = np.array([an[i] * Rn[i] / den[i] for i in range(an.size)])
    refb = np.array([bn_[i] * Rn[i] / den[i] for i in range(an.size)])
    res["residual split"] = max(_relerr(ra.numpy().ravel(), refa), _relerr(rb.numpy().ravel(), refb))
    # BN folding: conv+bn (fold_bn, negative gammas included) vs a conv with hand-folded weights,
    # both as z+ and as z^B, and z+ against the dense formulation of the folded matrix
    conv = nn.Conv2d(3, 4, 3, stride=1, padding=1, bias=True).to(d)
    bnm = nn.BatchNorm2d(4).to(d).eval()
    with torch.no_grad():
        bnm.weight.copy_(torch.tensor([1.3, -0.7, 0.4, -1.9], dtype=d))
        bnm.bias.copy_(torch.randn(4, dtype=d))
        bnm.running_mean.copy_(torch.randn(4, dtype=d))
        bnm.running_var.copy_(torch.rand(4, dtype=d) + 0.5)
    wf = np.array(conv.weight.detach().numpy())
    for o in range(4):
        wf[o] *= float(bnm.weight[o]) / np.sqrt(float(bnm.running_var[o]) + bnm.eps)
    pre = nn.Conv2d(3, 4, 3, stride=1, padding=1, bias=False).to(d)
    with torch.no_grad():
        pre.weight.copy_(torch.from_numpy(wf))
    x = torch.rand(1, 3, 5, 5, dtype=d)
    R = torch.randn(1, 4, 5, 5, dtype=d)
    e1 = _relerr(zplus_conv(conv, fold_bn(conv.weight, bnm), x, R, eps).numpy(),
                 zplus_conv(pre, pre.weight, x, R, eps).numpy())
    Wp_mat = _probe_matrix(lambda t: F.conv2d(t, torch.from_numpy(np.maximum(wf, 0)), None, 1, 1), (3, 5, 5))
    e2 = _relerr(zplus_conv(conv, fold_bn(conv.weight, bnm), x, R, eps).flatten().numpy(),
                 _dense_zplus(x.flatten().numpy(), Wp_mat, R.flatten().numpy(), eps))
    xz = (torch.rand(1, 3, 5, 5, dtype=d) - torch.tensor(mean, dtype=d).view(1, 3, 1, 1)) / \
        torch.tensor(std, dtype=d).view(1, 3, 1, 1)
    ctx = _Ctx(xz, mean, std, eps)
    e3 = _relerr(zb_conv(conv, fold_bn(conv.weight, bnm), xz, ctx.low, ctx.high, R, eps).numpy(),
                 zb_conv(pre, pre.weight, xz, ctx.low, ctx.high, R, eps).numpy())
    res["bn folding (z+ and z^B, negative gammas)"] = max(e1, e2, e3)
    return res


# (name, input size, quick): quick runs one image, eps 1e-100 and inject one only. vgg16 runs at
# 32x32 by default (a 1x1 feature map, which PyTorch's AdaptiveAvgPool2d(7) replicates and dnnguard
# refuses); --full runs it at 224x224, dnnguard's smallest size (~10-20 s per float64 pass here).
CONSERVE_NETS = [("lenet5", (28, 28), False), ("wrn-10-4", (32, 32), False), ("wrn-10-1", (32, 32), False),
                 ("wrn-16-2", (32, 32), False),
                 ("vgg16-cifar", (32, 32), False), ("resnet18-cifar", (32, 32), False), ("resnet18", (64, 64), False),
                 ("vgg16", (32, 32), True)]
CONSERVE_FULL = [("vgg16", (224, 224), True)]


def _selfcheck(full=False):
    torch.set_num_threads(2)
    t0 = time.time()
    ok = True
    d64 = torch.float64

    print("1. conservation, float64, random weights, 2 images (vgg16: 1, A only), inject one and logit, worst:")
    print("   A = |sum R_input - (v - lost)| / |v|, every bias, beta, running_mean zero, eps 1e-100 (must be <= 1e-9)")
    print("   lost = relevance at outputs with z_j == 0 exactly (reaches no input), / |v|, same nets")
    print("   B = |sum R_input - v| / |v|, no biases, eps 1e-9, inject one (eps share: R_j eps / (z_j + eps) a layer)")
    print("   C = (v - sum R_input) / v with random biases, eps 1e-9, inject one; C0 = the part lost at z_j == 0")
    print(f"   {'net':15s} {'input':6s} {'A':>9s} {'lost':>9s} {'B':>9s} {'C':>9s} {'C0':>9s}  where lost (no biases)")
    for name, hw, quick in CONSERVE_NETS + (CONSERVE_FULL if full else []):
        x, mean, std = _inputs(name, 1 if quick else 2, hw, seed=3)
        row, where = {}, set()
        t1 = time.time()
        net = torch_nets.build(name, 10)
        for biases in (False,) if quick else (False, True):
            if quick:  # its own init (torchvision's vgg16: kaiming/normal weights), biases zeroed
                with torch.no_grad():
                    for mod in net.modules():
                        if isinstance(mod, (nn.Conv2d, nn.Linear)) and mod.bias is not None:
                            mod.bias.zero_()
                net = net.to(d64).eval()
            else:
                net = _randomize(net.float(), seed=11, biases=biases).to(d64).eval()
            with torch.no_grad():
                ref_logits = net(x)
            for eps in ((1e-100,) if quick else (1e-100, 1e-9)) if not biases else (1e-9,):
                for inj in ("one", "logit") if not (biases or quick or eps == 1e-9) else ("one",):
                    notes, st = [], {}
                    R, pred, logits = relevance(name, net, x, mean, std, eps=eps, inject=inj, dtype=d64, notes=notes,
                                                stats=st)
                    lerr = _relerr(logits.numpy(), ref_logits.numpy())
                    assert lerr < 1e-12, (name, lerr)  # the walker's forward is the module's forward
                    assert torch.equal(pred, _argmax_lowest(ref_logits))
                    v = torch.ones(x.shape[0], dtype=d64) if inj == "one" else \
                        logits.gather(1, pred.view(-1, 1)).view(-1)
                    tot = R.sum(dim=(1, 2, 3))
                    lost = st["lost"]
                    if not biases and eps == 1e-100:
                        row["A"] = max(row.get("A", 0), float(((tot - (v - lost)) / v).abs().max()))
                        row["lost"] = max(row.get("lost", 0), float((lost / v).abs().max()))
                        where |= set(st["lost_by_layer"])
                    elif not biases:
                        row["B"] = max(row.get("B", 0), float(((tot - v) / v).abs().max()))
                    else:
                        k = int(((v - tot) / v).abs().argmax())
                        row["C"], row["C0"] = float((v[k] - tot[k]) / v[k]), float(lost[k] / v[k])
        ok &= row["A"] <= 1e-9
        flag = "" if row["A"] <= 1e-9 else "  FAIL"
        f = {k: f"{row[k]:9.1e}" if k in row else f"{'-':>9s}" for k in ("A", "lost", "B", "C", "C0")}
        print(f"   {name:15s} {hw[0]}x{hw[1]:<3d} {f['A']} {f['lost']} {f['B']} {f['C']} {f['C0']}  "
              f"{', '.join(sorted(where)) or '-'}  ({time.time() - t1:.1f} s){flag}")
        for n_ in sorted(set(notes)):
            print(f"      note: {n_}")
    # classes: inject at given classes (the logit there may be negative); conservation still holds
    x, mean, std = _inputs("lenet5", 2, (28, 28), seed=3)
    net = _randomize(torch_nets.build("lenet5", 10), seed=11, biases=False).to(d64).eval()
    for inj in ("one", "logit"):
        st = {}
        R, pred, logits = relevance("lenet5", net, x, mean, std, eps=1e-100, inject=inj, classes=[3, 7], dtype=d64,
                                    stats=st)
        v = torch.ones(2, dtype=d64) if inj == "one" else logits[[0, 1], [3, 7]]
        e = float(((R.sum(dim=(1, 2, 3)) - (v - st["lost"])) / v).abs().max())
        ok &= e <= 1e-9
        print(f"   lenet5, classes [3, 7], inject {inj}: A {e:.1e}{'' if e <= 1e-9 else '  FAIL'}")
    # wrn stem: folded (spec's rule) vs passed through
    x, mean, std = _inputs("wrn-10-4", 2, (32, 32), seed=3)
    for neg in (0.0, 0.25):
        net = _randomize(torch_nets.build("wrn-10-4", 10), seed=11, biases=True, neg_gamma=neg).to(d64).eval()
        Ra = relevance("wrn-10-4", net, x, mean, std, dtype=d64)[0]
        Rb = relevance("wrn-10-4", net, x, mean, std, dtype=d64, fold_wrn_stem=False)[0]
        print(f"   wrn-10-4, block1.layer.0.bn1 folded into the stem vs passed through, {int(neg * 100)}% negative "
              f"gammas: normalised difference {_relerr(Rb.numpy(), Ra.numpy()):.1e}")

    print(f"   ({time.time() - t0:.1f} s)")
    print("2. each rule vs its dense loop formulation, float64 (normalised error, must be <= 1e-10)")
    for k, v in _dense_checks().items():
        flag = "" if v <= 1e-10 else "   FAIL"
        ok &= v <= 1e-10
        print(f"   {k:42s} {v:.2e}{flag}")

    print(f"   ({time.time() - t0:.1f} s)")
    print("3. float32 vs float64, random weights with biases, 4 images (max|a-b| / max|b|)")
    for name in ("vgg16-cifar", "resnet18-cifar", "wrn-10-4", "lenet5"):
        (c, hh, ww), _ = torch_nets.default_shape(name)
        x, mean, std = _inputs(name, 4, (hh, ww), seed=5)
        for biases in ((True, False) if name.startswith("wrn") else (True,)):
            net = _randomize(torch_nets.build(name, 10), seed=13, biases=biases)
            st = {}
            R64, p64, l64 = relevance(name, net, x, mean, std, dtype=d64, stats=st)
            R32, p32, l32 = relevance(name, net, x.float(), mean, std, dtype=torch.float32)
            same = bool(torch.equal(p64, p32))
            per = [_relerr(R32[i].double().numpy(), R64[i].numpy()) for i in range(4)]
            print(f"   {name + ('' if biases else ' (no biases)'):26s} {_relerr(R32.double().numpy(), R64.numpy()):.1e}"
                  f" (per image {' '.join(f'{e:.1e}' for e in per)}), logits "
                  f"{_relerr(l32.double().numpy(), l64.numpy()):.0e}, same predictions {same}")
    print("   (wrn with batch-norm shifts: where an add's output y is near 0 while relu(bn1(y)) > 0 still sends\n"
          "   relevance to it, R_a = a R / y amplifies the rounding of y; with beta = running_mean = 0, R at y\n"
          "   vanishes with y and the amplification goes away)")
    fp = fingerprint_images(R64, 255.0 / float(R64.sum(dim=1).abs().max()))
    assert fp.dtype == np.uint8 and fp.shape == (4,) + tuple(R64.shape[2:])
    r = torch.tensor([[[[0.5, 1.49, -3.0, 300.0]], [[0.0, 0.0, 1.0, 0.0]]]], dtype=d64)  # [1, 2, 1, 4]
    assert fingerprint_images(r, 1.0).tolist() == [[[1, 1, 0, 255]]], fingerprint_images(r, 1.0)
    assert fingerprint_images(r, 2.0).tolist() == [[[1, 3, 0, 255]]]
    print(f"self-check {'passed' if ok else 'FAILED'} in {time.time() - t0:.1f} s")
    return ok


if __name__ == "__main__":
    sys.exit(0 if _selfcheck(full="--full" in sys.argv[1:]) else 1)
