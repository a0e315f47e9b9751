"""tests/test_attack.py — `dnnguard attack prune` and `attack permute` end to end, with numpy and
PyTorch as independent oracles: pruning zeroes exactly the floor(R·n) smallest |w| (ties to the lower
index, per layer or globally) and leaves everything else byte for byte; permuting a layer's channels
changes the weights but not the function (PyTorch logits on real images, dnnguard eval accuracy);
finetune makes PyTorch's SGD step on the split and subset it is given, with no regularizer;
refusals (residual add, logits) and bad input give one line and exit 2."""
from fractions import Fraction
import gzip
import json
import math
import os
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402
import torch_nets  # noqa: E402
from cli_check import CIFAR, MNIST, SHARED, check, done, expect_bad, parse, run  # noqa: E402


def run_json(*args):
    r = run(*args)
    if r.returncode != 0:
        print(f"     dnnguard {' '.join(args)} exited {r.returncode}: {r.stderr.strip()[-500:]}")
        return None
    return json.loads(r.stdout)


def same_bytes(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def is_target(name, a):
    return name.endswith(".weight") and a.ndim in (2, 4) and not name.startswith("optim.")


tmp = tempfile.mkdtemp(prefix="dg-attack-")
P = lambda name: os.path.join(tmp, name)

# ---------------------------------------------------------------- prune
r = run("train", "--net", "lenet5", "--data", MNIST, "--subset", "2000", "--epochs", "1", "--opt", "adam", "--lr",
        "1e-3", "--seed", "1", "--out", P("m.safetensors"))
check(r.returncode == 0, f"train a LeNet-5 to attack (exit {r.returncode}) {r.stderr.strip()[-300:]}")
W = st_io.read(P("m.safetensors"))


def expected_prune(weights, names, rate, scope):
    """numpy oracle: zero the floor(rate·n) smallest |w|, stable order (ties to the lower flat index),
    per layer or over the concatenation of the layers in the given order."""
    out = {n: weights[n].astype(np.float32).copy() for n in names}
    groups = [[n] for n in names] if scope == "layer" else [list(names)]
    for group in groups:
        flat = np.concatenate([out[n].ravel() for n in group])
        key = np.where(np.isnan(flat), np.inf, np.abs(flat))
        k = math.floor(rate * flat.size)
        order = np.argsort(key, kind="stable")
        flat[order[:k]] = 0.0
        at = 0
        for n in group:
            size = out[n].size
            out[n] = flat[at:at + size].reshape(out[n].shape)
            at += size
    return out


def check_prune(src, rate, scope, label, meta_in=None):
    """Prune src at rate (scope layer|global) with dnnguard and compare with the numpy oracle."""
    weights, meta_src = st_io.read(src, with_metadata=True)
    text, rate = rate, Fraction(rate)  # the decimal exactly: floor(0.29·100) is 29
    out = P(f"pruned-{label}.safetensors")
    args = ["attack", "prune", "--model", src, "--rate", text, "--out", out] + (["--global"] if scope == "global" else [])
    report = run_json(*args)
    check(report is not None, f"{label}: attack prune --rate {text} ({scope}) runs")
    if report is None:
        return None
    got, meta = st_io.read(out, with_metadata=True)
    names = [l["name"] for l in report["layers"]]
    targets = [n for n in weights if is_target(n, weights[n])]
    check(sorted(names) == sorted(targets), f"{label}: the report lists every conv/linear weight and nothing else")
    want = expected_prune(weights, names, rate, scope)
    exact = all(got[n].dtype == np.float32 and np.array_equal(got[n], want[n]) for n in names)
    check(exact, f"{label}: each conv/linear weight equals the oracle (the floor(R·n) smallest |w| zeroed, ties by index)")
    total = sum(weights[n].size for n in names)
    if scope == "layer":
        counts = all(l["zeroed"] == math.floor(rate * l["numel"]) for l in report["layers"])
    else:
        counts = sum(l["zeroed"] for l in report["layers"]) == math.floor(rate * total)
    check(counts and report["weights"] == total, f"{label}: reported counts are floor(R·n) ({report['zeroed']} of {total})")
    # zeros after = max(zeros before, k) per group, counted directly
    zeros_ok = True
    for n in names:
        before = np.count_nonzero(weights[n] == 0)
        after = np.count_nonzero(got[n] == 0)
        zeroed = next(l["zeroed"] for l in report["layers"] if l["name"] == n)
        zeros_ok &= after == before + np.count_nonzero((weights[n] != 0) & (got[n] == 0)) and after >= zeroed
        kept = got[n] != 0
        dropped = (got[n] == 0) & (weights[n] != 0)
        if kept.any() and dropped.any():
            zeros_ok &= np.abs(weights[n][dropped]).max() <= np.abs(weights[n][kept]).min()
    check(zeros_ok, f"{label}: every zeroed weight is no larger in magnitude than every kept one of its layer")
    others = [n for n in weights if n not in names and not n.startswith("optim.")]
    untouched = True
    for n in others:
        if np.issubdtype(weights[n].dtype, np.floating) and weights[n].dtype != np.float32:  # converted to F32
            untouched &= got[n].dtype == np.float32 and np.array_equal(got[n], weights[n].astype(np.float32))
        else:  # F32 and integer tensors: byte for byte
            untouched &= same_bytes(got[n], weights[n])
    check(untouched and set(got) == set(names) | set(others),
          f"{label}: biases and other tensors are copied unchanged ({len(others)} tensors)")
    want_meta = dict(meta_src, attack="prune", prune_rate=text, prune_scope=scope)
    check(meta == want_meta, f"{label}: metadata keeps the input's and adds the attack ({meta})")
    return report, got


res = check_prune(P("m.safetensors"), "0.5", "layer", "lenet5 per layer 0.5")
res = check_prune(P("m.safetensors"), "0.7", "global", "lenet5 global 0.7")
# a torch.save checkpoint of a DataParallel model, pruned into safetensors: the output's metadata does not
# carry what the .pt reader said of its input (source, torch_entry, torch_stripped_prefix)
torch.save({"state_dict": {"module." + k: torch.from_numpy(np.array(v)) for k, v in W.items()}, "epoch": 3},
           P("dp.pt"))
r = run("attack", "prune", "--model", P("dp.pt"), "--rate", "0.1", "--out", P("dp-pruned.safetensors"))
_, dp_meta = st_io.read(P("dp-pruned.safetensors"), with_metadata=True) if r.returncode == 0 else (None, {})
check(r.returncode == 0 and dp_meta.get("attack") == "prune" and
      not {"source", "torch_entry", "torch_stripped_prefix", "torch_module"} & set(dp_meta),
      f"a pruned .pt checkpoint's safetensors output keeps no reader-made metadata ({sorted(dp_meta)})")
# rates whose product with a layer's size is an integer that doubles round below (0.41·2400, 0.29·120)
check_prune(P("m.safetensors"), "0.41", "layer", "lenet5 per layer 0.41")
check_prune(P("m.safetensors"), "0.29", "layer", "lenet5 per layer 0.29")
if res:
    report, got = res
    fractions = {l["name"]: l["zeroed"] / l["numel"] for l in report["layers"]}
    check(max(fractions.values()) - min(fractions.values()) > 0.2,
          f"global pruning ranks across layers: per-layer fractions differ ({fractions})")
    thr = report["layers"][0]["threshold"]
    allw = np.concatenate([np.abs(W[n]).ravel() for n in fractions])
    check(abs(np.sort(allw)[math.floor(0.7 * allw.size) - 1] - thr) <= 1e-7 * max(thr, 1e-30),
          f"global threshold is the floor(0.7·n)-th smallest |w| of all layers ({thr})")

r = run("attack", "prune", "--model", P("m.safetensors"), "--rate", "0", "--out", P("rate0.safetensors"))
z, zmeta = st_io.read(P("rate0.safetensors"), with_metadata=True) if r.returncode == 0 else ({}, {})
check(r.returncode == 0 and set(z) == set(W) and all(same_bytes(z[n], W[n]) for n in W),
      "rate 0 leaves every tensor byte for byte unchanged")

# Pruning a pruned model again at the same rate changes nothing (zeros are the smallest).
r = run("attack", "prune", "--model", P("pruned-lenet5 per layer 0.5.safetensors"), "--rate", "0.5",
        "--out", P("again.safetensors"))
a, b = st_io.read(P("again.safetensors")), st_io.read(P("pruned-lenet5 per layer 0.5.safetensors"))
check(r.returncode == 0 and all(same_bytes(a[n], b[n]) for n in b), "pruning a pruned model at the same rate is a no-op")

# A hand-made file: many ties and zeros, an F16 bias, batch-norm tensors, an I64 counter, optimizer
# state and metadata; both scopes, the oracle exact to the tie-break.
rng = np.random.default_rng(5)
hand = {
    "a.weight": (np.round(rng.standard_normal((8, 3, 3, 3)), 1) * (rng.random((8, 3, 3, 3)) > 0.2)).astype(np.float32),
    "a.bias": rng.standard_normal(8).astype(np.float16),
    "bn.weight": rng.standard_normal(8).astype(np.float32),
    "bn.bias": rng.standard_normal(8).astype(np.float32),
    "bn.running_mean": rng.standard_normal(8).astype(np.float32),
    "bn.running_var": rng.random(8).astype(np.float32),
    "bn.num_batches_tracked": np.array(123456789012, dtype=np.int64),
    "fc.weight": np.round(rng.standard_normal((5, 72)), 1).astype(np.float32),
    "fc.bias": rng.standard_normal(5).astype(np.float32),
    "optim.m.fc.weight": rng.standard_normal((5, 72)).astype(np.float32),
}
hand["fc.weight"][0, :10] = -0.0
st_io.write(P("hand.safetensors"), hand, metadata={"owner": "alice", "attack": "old"})
for rate, scope in [("0.3", "layer"), ("0.45", "global"), ("1", "layer")]:
    res = check_prune(P("hand.safetensors"), rate, scope, f"hand-made file {scope} {rate}")
    if res:
        check("optim.m.fc.weight" not in res[1], f"hand-made file {scope} {rate}: optimizer state is dropped")

for bad in ["1.5", "-0.1", "abc", "nan", "0.5x"]:
    expect_bad(["attack", "prune", "--model", P("m.safetensors"), "--rate", bad, "--out", P("x.safetensors")],
               "--rate", f"prune --rate {bad}")
expect_bad(["attack", "prune", "--model", P("missing.safetensors"), "--rate", "0.5", "--out", P("x.safetensors")],
           "missing.safetensors", "prune a missing file")
expect_bad(["attack", "prune", "--model", P("m.safetensors"), "--out", P("x.safetensors")], "--rate",
           "prune without --rate")
check(not os.path.exists(P("x.safetensors")), "no output file after a refused prune")


# ---------------------------------------------------------------- permute
def mnist_images(n):
    with gzip.open(os.path.join(SHARED, "mnist", "t10k-images-idx3-ubyte.gz")) as f:
        raw = f.read(16 + n * 784)[16:]
    x = np.frombuffer(raw, dtype=np.uint8).reshape(n, 1, 28, 28).astype(np.float32) / 255.0
    return torch.from_numpy((x - 0.1307) / 0.3081)


def cifar_images(n):
    with gzip.open(os.path.join(SHARED, "cifar10", "test_batch.bin.gz")) as f:
        raw = np.frombuffer(f.read(n * 3073), dtype=np.uint8).reshape(n, 3073)
    x = raw[:, 1:].reshape(n, 3, 32, 32).astype(np.float32) / 255.0
    return torch.from_numpy((x - 0.47) / 0.25)


def torch_logits(name, weights, x):
    _, classes = torch_nets.default_shape(name)
    module = torch_nets.build(name, classes)
    sd = module.state_dict()
    for k in sd:
        if k in weights:
            sd[k] = torch.from_numpy(np.ascontiguousarray(weights[k]))
    module.load_state_dict(sd, strict=True)
    module.eval()
    with torch.no_grad():
        return module(x).numpy()


def random_weights(name, seed, path):
    """Seeded random weights (He uniform, so that activations keep their scale through the net),
    batch-norm statistics far from their defaults, written with a num_batches_tracked (I64) per batch
    norm and some metadata."""
    torch.manual_seed(seed)
    _, classes = torch_nets.default_shape(name)
    module = torch_nets.build(name, classes)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                bound = (6.0 / m.weight[0].numel()) ** 0.5
                m.weight.uniform_(-bound, bound)
                if m.bias is not None:
                    m.bias.uniform_(-0.1, 0.1)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(7)
    st_io.write(path, {k: v for k, v in module.state_dict().items()}, metadata={"source": "torch"})


def check_permute(name, model, layer, x, seed=9, data=None, eval_args=None):
    label = f"{name} {layer}"
    out = P(f"perm-{name}-{layer}.safetensors")
    args = ["attack", "permute", "--model", model, "--net", name, "--layer", layer, "--seed", str(seed), "--out", out]
    report = run_json(*args, *(["--data", data] if data else []))
    check(report is not None, f"{label}: attack permute runs")
    if report is None:
        return None
    before, meta_in = st_io.read(model, with_metadata=True)
    after, meta = st_io.read(out, with_metadata=True)
    perm = report["permutation"]
    C = before[layer].shape[0]
    check(sorted(perm) == list(range(C)) and perm != list(range(C)) and report["channels"] == C,
          f"{label}: a permutation of its {C} output channels that moves some")
    changed = report["changed"]
    check(np.array_equal(after[layer], before[layer][perm]), f"{label}: the layer's rows are reordered as reported")
    check(all(not np.array_equal(after[n], before[n]) for n in changed) and layer in changed,
          f"{label}: every tensor reported as changed differs ({changed})")
    check(set(after) == set(before) and all(same_bytes(after[n], before[n]) for n in before if n not in changed),
          f"{label}: every other tensor (num_batches_tracked included) is kept byte for byte")
    check(meta == dict(meta_in, attack="permute", permute_layer=layer, permute_seed=str(seed)),
          f"{label}: metadata records the attack ({meta})")
    ref, got = torch_logits(name, before, x), torch_logits(name, after, x)
    scale = float(np.abs(ref).max())
    diff = float(np.abs(got - ref).max())
    check(scale > 0.1 and diff <= 1e-4 * scale,
          f"{label}: PyTorch logits on {len(x)} real images agree (max diff {diff:.2e}, logits up to {scale:.2f})")
    if eval_args:
        e0 = run_json("eval", "--net", name, "--model", model, *eval_args)
        e1 = run_json("eval", "--net", name, "--model", out, *eval_args)
        check(e0 is not None and e1 is not None and e0["accuracy"] == e1["accuracy"]
              and abs(e0["loss"] - e1["loss"]) <= 1e-4 * max(1.0, e0["loss"]),
              f"{label}: dnnguard eval gives the same accuracy ({e0 and e0['accuracy']} vs {e1 and e1['accuracy']})")
    return report


x_mnist = mnist_images(64)

# eval's top-1 and top-5 accuracy against torch's argmax and topk of the same weights on the same
# 2000 test images (a 1-epoch LeNet-5 on 2000 images, so that top-5 is not all hits)
labels = np.frombuffer(gzip.open(os.path.join(SHARED, "mnist", "t10k-labels-idx1-ubyte.gz")).read()[8:8 + 2000],
                       np.uint8).astype(np.int64)
# scale 1000 on fc3: a confident model whose softmax underflows to 0 for most classes (ranked from the
# logits, a wrong label stays wrong; ranked from the probabilities it tied with the rest at 0).
# Scale 0: every logit equal, ties ranked by class index as top-1's argmax breaks them (top-1 is
# class 0, top-5 classes 0-4; counting every tie as a hit made it 1.0)
for scale in (1.0, 1000.0, 0.0):
    Ws = dict(W, **{k: (W[k] * np.float32(scale)).astype(np.float32) for k in ("fc3.weight", "fc3.bias")})
    st_io.write(P("scaled.safetensors"), Ws)
    logits = torch.from_numpy(torch_logits("lenet5", Ws, mnist_images(2000)))
    top1 = float((logits.argmax(1).numpy() == labels).mean())
    top5 = float((logits.topk(5, 1).indices.numpy() == labels[:, None]).any(1).mean())
    if scale == 0.0:
        top5 = float((labels < 5).mean())
    ev = run_json("eval", "--net", "lenet5", "--model", P("scaled.safetensors"), "--data", MNIST, "--limit", "2000")
    check(ev is not None and abs(ev["accuracy"] - top1) <= 1 / 2000 and abs(ev["top5_accuracy"] - top5) <= 1 / 2000
          and top5 < 1.0 and top5 > top1,
          f"fc3 x{scale:g}: eval's accuracy {ev and ev['accuracy']} and top-5 {ev and ev['top5_accuracy']} are torch's "
          f"{top1} and {top5}")
for layer in ["conv1.weight", "conv2.weight", "fc1.weight"]:
    check_permute("lenet5", P("m.safetensors"), layer, x_mnist, eval_args=["--data", MNIST])
rep9 = run_json("attack", "permute", "--model", P("m.safetensors"), "--net", "lenet5", "--layer", "conv2.weight",
                "--seed", "9", "--out", P("again9.safetensors"))
rep10 = run_json("attack", "permute", "--model", P("m.safetensors"), "--net", "lenet5", "--layer", "conv2.weight",
                 "--seed", "10", "--out", P("again10.safetensors"))
a9 = st_io.read(P("perm-lenet5-conv2.weight.safetensors"))
b9 = st_io.read(P("again9.safetensors"))
check(rep9 and rep10 and all(same_bytes(a9[n], b9[n]) for n in a9) and rep9["permutation"] != rep10["permutation"],
      "the same seed gives the same file, another seed another permutation")

x_cifar = cifar_images(16)
random_weights("vgg16-cifar", 1, P("vgg.safetensors"))
check_permute("vgg16-cifar", P("vgg.safetensors"), "features.0.weight", x_cifar, data=CIFAR)  # conv → bn → relu → conv
check_permute("vgg16-cifar", P("vgg.safetensors"), "features.40.weight", x_cifar)  # → bn → pool → flatten → linear
random_weights("wrn-10-4", 2, P("wrn.safetensors"))
# the stem feeds block1's bn1 → relu → conv1 and the 1×1 shortcut conv: two consumers
rep = check_permute("wrn-10-4", P("wrn.safetensors"), "conv1.weight", x_cifar,
                    eval_args=["--data", CIFAR, "--limit", "64", "--batch", "64"])
check(rep is not None and {"block1.layer.0.conv1.weight", "block1.layer.0.convShortcut.weight",
                           "block1.layer.0.bn1.running_var"} <= set(rep["changed"]),
      "wrn-10-4 conv1: both consumers and the batch norm between are permuted")
check_permute("wrn-10-4", P("wrn.safetensors"), "block1.layer.0.conv1.weight", x_cifar)

# ---------------------------------------------------------------- finetune
# One full-batch SGD step on the whole test split (--split test --subset 10000: every image once, in
# some order) is w − lr·∇ mean CE over those images: PyTorch computes it from the same weights. It
# shows that finetune trains on the split it is given, with the plain loss (no regularizer).
tl = np.frombuffer(gzip.open(os.path.join(SHARED, "mnist", "t10k-labels-idx1-ubyte.gz")).read()[8:], np.uint8)
r = run("attack", "finetune", "--model", P("m.safetensors"), "--net", "lenet5", "--data", MNIST, "--split", "test",
        "--subset", "10000", "--batch", "10000", "--epochs", "1", "--opt", "sgd", "--lr", "0.1", "--momentum", "0",
        "--eval-every", "0", "--log", P("ft.jsonl"), "--out", P("ft.safetensors"))
check(r.returncode == 0, f"attack finetune: one full-batch step on the test split (exit {r.returncode}) "
                         f"{r.stderr.strip()[-300:]}")
if r.returncode == 0:
    net = torch_nets.build("lenet5", 10)
    net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in W.items() if k in net.state_dict()})
    loss = torch.nn.functional.cross_entropy(net(mnist_images(10000)), torch.from_numpy(tl.astype(np.int64)))
    loss.backward()
    grads = {k: p.grad.numpy() for k, p in net.named_parameters()}
    F = st_io.read(P("ft.safetensors"))
    worst = max(float(np.abs(F[k] - (W[k] - 0.1 * g)).max() / (0.1 * np.abs(g).max())) for k, g in grads.items())
    moved = min(float(np.abs(F[k] - W[k]).max()) for k in grads)
    check(worst < 1e-3 and moved > 0, f"finetune's step is PyTorch's w - lr*grad on the test split (worst error "
                                      f"{worst:.1e} of the largest step, every tensor moved)")
    log = [json.loads(line) for line in open(P("ft.jsonl"))]
    check(len(log) == 1 and log[0].get("step") == 1 and abs(log[0].get("train_loss", -1) - float(loss)) < 1e-4
          and not any(k.startswith("wm") for k in log[0]),
          f"its log: one step, the loss PyTorch computes ({log and log[0].get('train_loss')} vs {float(loss):.6f}), "
          "no watermark terms")
r = run("attack", "finetune", "--model", P("m.safetensors"), "--net", "lenet5", "--data", MNIST, "--subset", "600",
        "--batch", "128", "--epochs", "2", "--eval-every", "0", "--log", P("ft2.jsonl"), "--out", P("ft2.safetensors"))
log = [json.loads(line) for line in open(P("ft2.jsonl"))] if r.returncode == 0 else []
check([e.get("step") for e in log] == [5, 10], f"--subset 600 at batch 128: 5 steps an epoch ({[e.get('step') for e in log]})")
expect_bad(["attack", "finetune", "--model", P("m.safetensors"), "--net", "lenet5", "--data", MNIST, "--wm",
            P("key.json"), "--out", P("no.safetensors")], "--wm", "attack finetune with --wm (it never embeds)")
expect_bad(["attack", "finetune", "--model", P("m.safetensors"), "--net", "lenet5", "--data", MNIST, "--lr", "-1",
            "--out", P("no.safetensors")], "attack finetune: --epochs", "attack finetune's errors name attack finetune")
expect_bad(["attack", "overwrite", "--model", P("m.safetensors"), "--net", "lenet5", "--data", MNIST, "--opt", "rms",
            "--out", P("no.safetensors")], "attack overwrite: --opt", "attack overwrite's errors name attack overwrite")
expect_bad(["attack", "overwrite", "--model", P("m.safetensors"), "--net", "lenet5", "--data", MNIST, "--keys",
            "20000", "--out", P("no.safetensors")], "the train split has 6742 images of class 1",
           "attack overwrite: more --keys than the split has of --source-class (the split named)")
# --split test: the fresh keys are other test images than the keys trained on. MNIST's test split has
# 1135 images of class 1: 600 keys leave 535 for 600 fresh ones (drawn from all 1135, they overlapped)
expect_bad(["attack", "overwrite", "--model", P("m.safetensors"), "--net", "lenet5", "--data", MNIST, "--split",
            "test", "--keys", "600", "--out", P("no.safetensors")],
           "the test split has 535 images of class 1 (--source-class) that are not already the keys trained on",
           "attack overwrite --split test: fresh keys share no image with the keys")
# --limit caps the per-epoch evaluation too (it is there to make the run short)
r = run("attack", "overwrite", "--model", P("m.safetensors"), "--net", "lenet5", "--data", MNIST, "--split", "test",
        "--subset", "300", "--keys", "50", "--epochs", "2", "--limit", "250", "--log", P("ow.jsonl"),
        "--out", P("ow.safetensors"))
ow, log = parse(r.stdout), [json.loads(line) for line in open(P("ow.jsonl"))] if r.returncode == 0 else []
check(r.returncode == 0 and ow.get("test_images") == 250 and [e.get("test_images") for e in log] == [250, 250],
      f"attack overwrite --limit 250: the epochs evaluate 250 test images too ({[e.get('test_images') for e in log]}) "
      f"{r.stderr.strip()[-200:]}")

# Refusals and bad input: one line, exit 2, no output file.
random_weights("resnet18-cifar", 3, P("resnet.safetensors"))
M = ["attack", "permute", "--out", P("y.safetensors"), "--seed", "1"]
expect_bad(M + ["--model", P("resnet.safetensors"), "--net", "resnet18-cifar", "--layer", "conv1.weight"],
           "residual add", "resnet18-cifar conv1 (bn1 → relu → a residual add)")
expect_bad(M + ["--model", P("wrn.safetensors"), "--net", "wrn-10-4", "--layer", "block1.layer.0.conv2.weight"],
           "residual add", "wrn-10-4 block conv2 (feeds the add)")
expect_bad(M + ["--model", P("m.safetensors"), "--net", "lenet5", "--layer", "fc3.weight"], "logits",
           "the last linear layer")
expect_bad(M + ["--model", P("m.safetensors"), "--net", "lenet5", "--layer", "conv1.bias"], "not a conv or linear weight",
           "a bias")
expect_bad(M + ["--model", P("vgg.safetensors"), "--net", "vgg16-cifar", "--layer", "features.1.weight"],
           "not a conv or linear weight", "a batch-norm weight")
expect_bad(M + ["--model", P("m.safetensors"), "--net", "lenet5", "--layer", "conv9.weight"], "conv9.weight",
           "an unknown layer")
expect_bad(M + ["--model", P("missing.safetensors"), "--net", "lenet5", "--layer", "conv1.weight"],
           "missing.safetensors", "a missing model file")
expect_bad(M + ["--model", P("m.safetensors"), "--net", "vgg16-cifar", "--layer", "features.0.weight"],
           "m.safetensors", "weights of another net")
expect_bad(M + ["--model", P("m.safetensors"), "--net", "lenet5"], "--layer", "no --layer")
check(not os.path.exists(P("y.safetensors")), "no output file after a refused permutation")
expect_bad(["attack", "shuffle"], "shuffle", "an unknown attack")

done()
