"""tests/test_normalize.py — --normalize on real data: a LeNet-5 trained in PyTorch on Fashion-MNIST with
transforms.Normalize((0.5,), (0.5,)) gets from `dnnguard eval --normalize 0.5/0.5` exactly the
accuracy PyTorch computes on the same images (and a lower one with the data set's own constants,
the silent loss this option exists for); train records the normalisation in its output's metadata
and uses it for its test split; a later command on another one warns, once (eval, infip extract,
verify and calibrate, train --init, attack finetune and overwrite); fp eval and infip verify
refuse a normalisation other than their reference's; bad values give one line and exit 2."""
import gzip
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_check import MNIST, check, done, expect_bad, parse, run  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch_nets import LeNet5  # noqa: E402

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
FASHION = "fashion-mnist"
tmp = tempfile.mkdtemp(prefix="dg-norm-")
P = lambda name: os.path.join(tmp, name)


def idx(name, header):
    return np.frombuffer(gzip.open(os.path.join(FASHION_DIR, name)).read()[header:], np.uint8)


train_x = idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28)
train_y = idx("train-labels-idx1-ubyte.gz", 8).astype(np.int64)
test_x = idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28)
test_y = idx("t10k-labels-idx1-ubyte.gz", 8).astype(np.int64)


def normalized(pixels):  # transforms.ToTensor() then transforms.Normalize((0.5,), (0.5,))
    return (torch.from_numpy(pixels.astype(np.float32)) / 255.0 - 0.5) / 0.5


# 1. A PyTorch model trained with Normalize((0.5,), (0.5,)): 400 Adam steps, a few seconds.
t0 = time.time()
torch.manual_seed(0)
torch.set_num_threads(4)
net = LeNet5()
opt = torch.optim.Adam(net.parameters(), lr=2e-3)
order = np.random.default_rng(0).permutation(len(train_y))
for step in range(400):
    b = order[step * 64:(step + 1) * 64]
    opt.zero_grad()
    F.cross_entropy(net(normalized(train_x[b])), torch.from_numpy(train_y[b])).backward()
    opt.step()
net.eval()
with torch.no_grad():
    torch_pred = torch.cat([net(normalized(test_x[i:i + 1000])).argmax(1) for i in range(0, 10000, 1000)]).numpy()
torch_correct = int((torch_pred == test_y).sum())
torch.save(net.state_dict(), P("torch-half.pt"))
print(f"torch: {torch_correct} of 10000 right after 400 steps ({time.time() - t0:.1f} s)")
check(torch_correct > 8000, f"the PyTorch model learned Fashion-MNIST ({torch_correct} of 10000)")

EVAL = ["eval", "--net", "lenet5", "--model", P("torch-half.pt"), "--data", FASHION]
r = run(*EVAL, "--normalize", "0.5/0.5")
out = parse(r.stdout)
right = round(out.get("accuracy", -1) * out.get("images", 0))
check(r.returncode == 0 and out.get("images") == 10000 and right == torch_correct,
      f"eval --normalize 0.5/0.5: {right} right, PyTorch {torch_correct} (exit {r.returncode}) {r.stderr[-200:]}")
check(out.get("normalize") == "0.5/0.5", f"eval reports the normalisation it used: {out.get('normalize')}")
torch_per_class = [int(((torch_pred == test_y) & (test_y == k)).sum()) for k in range(10)]
dg_per_class = [round(a * n) for a, n in zip(out.get("per_class_accuracy", []), out.get("per_class_count", []))]
check(dg_per_class == torch_per_class, f"and class by class: {dg_per_class} = PyTorch's {torch_per_class}")
r = run(*EVAL)
default = parse(r.stdout)
right_default = round(default.get("accuracy", -1) * default.get("images", 0))
check(r.returncode == 0 and default.get("normalize") == "0.286/0.353" and right_default < torch_correct,
      f"eval with the data set's own 0.286/0.353 (the default): {right_default} right, below {torch_correct}")

# 2. train records what it used, in the metadata and for its own test split.
r = run("train", "--net", "lenet5", "--data", FASHION, "--normalize", "0.5/0.5", "--subset", "3000", "--epochs",
        "1", "--opt", "adam", "--lr", "2e-3", "--batch", "32", "--eval-every", "1", "--seed", "3",
        "--out", P("half.safetensors"))
trained = parse(r.stdout)
check(r.returncode == 0, f"train --normalize 0.5/0.5 (exit {r.returncode}) {r.stderr[-200:]}")
r = run("info", "--model", P("half.safetensors"), "--json")
meta = parse(r.stdout).get("metadata", {})
check(meta.get("normalize") == "0.5/0.5", f"the trained model's metadata records normalize = {meta.get('normalize')}")
r = run("eval", "--net", "lenet5", "--model", P("half.safetensors"), "--data", FASHION, "--normalize", "0.5/0.5")
half = parse(r.stdout)
check(r.returncode == 0 and not r.stderr.strip() and half.get("accuracy") == trained.get("test_acc"),
      f"its test split was normalised so too: train's test_acc {trained.get('test_acc')} = eval's "
      f"{half.get('accuracy')}, no warning")
r = run("eval", "--net", "lenet5", "--model", P("half.safetensors"), "--data", FASHION)
lines = [l for l in r.stderr.splitlines() if l.strip()]
check(r.returncode == 0 and len(lines) == 1 and "trained with --normalize 0.5/0.5" in lines[0],
      f"eval with another normalisation warns in one line: {r.stderr.strip()!r}")
r = run("train", "--net", "lenet5", "--data", FASHION, "--subset", "500", "--epochs", "1", "--seed", "3",
        "--out", P("own.safetensors"))
r = run("info", "--model", P("own.safetensors"), "--json")
check(parse(r.stdout).get("metadata", {}).get("normalize") == "0.286/0.353",
      "without --normalize, train records the data set's own (0.286/0.353)")
# the normalisation changes the data a run trains on: a resume with another one is refused
own = ["train", "--net", "lenet5", "--data", FASHION, "--subset", "500", "--epochs", "1", "--seed", "3",
       "--out", P("own.safetensors"), "--resume"]
expect_bad([*own, "--normalize", "0.5/0.5"], "normalize", "a resume with another --normalize than its checkpoint's")
r = run(*own, "--normalize", "data")
check(r.returncode == 0 and "holds all 1 epochs" in r.stderr,
      f"a resume with the same normalisation (--normalize data) is taken (exit {r.returncode}) {r.stderr.strip()[-200:]}")

# 3. References record theirs, and checks against them refuse another.
r = run("info", "--data", FASHION, "--split", "test", "--normalize", "imagenet")
check(r.returncode == 2 and "1-channel" in r.stderr, f"imagenet (3 channels) on grey images: {r.stderr.strip()!r}")
r = run("info", "--data", MNIST, "--split", "test", "--normalize", "none", "--json")
info = parse(r.stdout)
check(info.get("mean") == [0] and info.get("std") == [1] and info.get("normalize") == "0/1",
      f"info honours --normalize none: mean {info.get('mean')} std {info.get('std')}")
ISSUE = ["fp", "issue", "--model", P("half.safetensors"), "--net", "lenet5", "--data", FASHION, "--classes", "0-1",
         "--conf", "0.5", "--iters", "300", "--search-steps", "2", "--batch", "2", "--seed", "1",
         "--out", P("fps")]
r = run(*ISSUE, "--normalize", "0.5/0.5")
reg = json.load(open(P("fps/registry.json"))) if os.path.exists(P("fps/registry.json")) else {}
check(reg.get("mean") == [0.5] and reg.get("std") == [0.5],
      f"fp issue --normalize records it: mean {reg.get('mean')} std {reg.get('std')} (exit {r.returncode}) "
      f"{r.stderr[-200:]}")
FP_EVAL = ["fp", "eval", "--model", P("half.safetensors"), "--registry", P("fps/registry.json"), "--per-user", "1",
           "--iters", "50", "--search-steps", "1"]
expect_bad([*FP_EVAL, "--normalize", "data"], "was made with 0.5/0.5",
           "fp eval --normalize data against a registry made with 0.5/0.5")
r = run(*FP_EVAL)
check(r.returncode == 0 and "warning" not in r.stderr,
      f"fp eval without --normalize takes the registry's (exit {r.returncode}) {r.stderr[-200:]}")

EXTRACT = ["infip", "extract", "--model", P("half.safetensors"), "--net", "lenet5", "--keys", FASHION, "--n", "8",
           "--seed", "2", "--batch", "8", "--out", P("ref")]
r = run(*EXTRACT, "--normalize", "0.5/0.5")
manifest = {}
for name in os.listdir(P("ref")) if os.path.isdir(P("ref")) else []:
    if name.endswith(".json") and "manifest" in name:
        manifest = json.load(open(os.path.join(P("ref"), name)))
check(r.returncode == 0 and manifest.get("mean") == [0.5] and manifest.get("std") == [0.5],
      f"infip extract --normalize records it in the manifest: {manifest.get('mean')} {manifest.get('std')}")
VERIFY = ["infip", "verify", "--model", P("half.safetensors"), "--reference", P("ref"), "--threshold", "0.85"]
expect_bad([*VERIFY, "--normalize", "0.286/0.353"], "was made with 0.5/0.5",
           "infip verify with another normalisation than the reference's")
r = run(*VERIFY)
check(r.returncode == 0 and parse(r.stdout).get("assim") == 1.0,
      f"infip verify without --normalize uses the manifest's: ASSIM {parse(r.stdout).get('assim')} for the same model")
r = run(*VERIFY, "--normalize", "0.5/0.5")
check(r.returncode == 0, f"infip verify --normalize equal to the manifest's runs (exit {r.returncode})")

# every command that loads a model recorded with another normalisation than its inputs' warns, once
def warned_once(r, recorded):
    lines = [l for l in r.stderr.splitlines() if "was trained with --normalize" in l]
    return len(lines) == 1 and f"trained with --normalize {recorded}" in lines[0] and lines[0].startswith(
        "dnnguard: warning: "), lines


for what, args, recorded in [
        ("infip extract (keys normalised with the data set's own)",
         ["infip", "extract", "--model", P("half.safetensors"), "--net", "lenet5", "--keys", FASHION, "--n", "4",
          "--seed", "2", "--batch", "4", "--out", P("ref-own")], "0.5/0.5"),
        ("infip verify (the reference's 0.5/0.5)", [*VERIFY[:3], P("own.safetensors"), *VERIFY[4:]], "0.286/0.353"),
        ("infip calibrate (the reference's 0.5/0.5)",
         ["infip", "calibrate", "--reference", P("ref"), "--independent", P("own.safetensors")], "0.286/0.353"),
        ("train --init", ["train", "--net", "lenet5", "--data", FASHION, "--subset", "200", "--epochs", "1",
                          "--eval-every", "0", "--init", P("half.safetensors"), "--out", P("init.safetensors")],
         "0.5/0.5"),
        ("attack finetune", ["attack", "finetune", "--model", P("half.safetensors"), "--net", "lenet5", "--data",
                             FASHION, "--subset", "200", "--epochs", "1", "--eval-every", "0",
                             "--out", P("ft.safetensors")], "0.5/0.5"),
        ("attack overwrite (it measures before and after, and fine-tunes)",
         ["attack", "overwrite", "--model", P("half.safetensors"), "--net", "lenet5", "--data", FASHION, "--subset",
          "200", "--epochs", "1", "--keys", "10", "--limit", "200", "--out", P("ow.safetensors")], "0.5/0.5")]:
    r = run(*args)
    ok, lines = warned_once(r, recorded)
    check(r.returncode in (0, 1) and ok, f"{what} of a model trained with another --normalize warns once "
                                         f"(exit {r.returncode}: {lines or r.stderr.strip()[-200:]})")

# 4. Bad values: one line, exit 2, before any work.
for value, mention, what in [("0.5/0", "std 0", "a zero std"), ("0.5/-1", "std -1", "a negative std"),
                             ("abc", "expected MEAN/STD", "junk text"), ("nan/0.5", "'nan'", "a NaN mean"),
                             ("0.5/inf", "'inf'", "an infinite std"), ("0.5,0.4,0.3/0.2", "3 mean and 1 std",
                                                                      "three means for grey images"),
                             ("imagenet", "1-channel", "imagenet for grey images"), ("0.5/", "expected", "no std"),
                             ("2/1", "mean 2", "a mean outside [0, 1]"), ("0.5,/0.5", "expected", "an empty value")]:
    expect_bad([*EVAL, "--normalize", value], mention, f"eval --normalize {value!r}: {what}")
expect_bad(["train", "--net", "lenet5", "--data", FASHION, "--normalize", "0/0", "--out", P("never.safetensors")],
           "std 0", "train --normalize 0/0")
expect_bad(["info", "--net", "lenet5", "--normalize", "0.5/0.5"], "--normalize with --data",
           "info --normalize without --data")
done()
