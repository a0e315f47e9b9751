"""tests/test_watermark_cli.py — the ActiveGuard watermark end to end on real MNIST with LeNet-5:
keygen (mode 0600, determinism, refusals), embedding by fine-tuning and from scratch (the JSON log
shows the regularizer and the digits that extract), verify's verdicts and exit codes (the owner's
key passes; a clean model, another key and a model that never saw the key fail), a model
watermarked and written by PyTorch (the regularizer written independently in torch, F32 and F16
files), a resume with another key refused, what the function-preserving permutations do to each
search mode, and bad input (one line, exit 2)."""
import gzip
import json
import os
import stat
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402
import torch_nets  # noqa: E402
from cli_check import MNIST, SHARED, check, done, expect_bad, run  # noqa: E402

WM1 = "1234567890210"


def verify(model, key, *extra):
    r = run("wm", "verify", "--model", model, "--key", key, *extra)
    try:
        out = json.loads(r.stdout)
    except ValueError:
        out = {}
    return r.returncode, out, r.stderr


tmp = tempfile.mkdtemp(prefix="dg-wm-")
P = lambda name: os.path.join(tmp, name)
TRAIN = ["--net", "lenet5", "--data", MNIST, "--subset", "6000", "--opt", "adam", "--lr", "1e-3", "--batch", "32"]
# Adam moves a weight by about lr per step, and a key weight may have to travel 9/a (the filter's
# whole range, about 0.5 here): embedding takes some 500 steps, 3 epochs of this subset.
EMBED_EPOCHS = "3"

# 1. a clean model
r = run("train", *TRAIN, "--epochs", "2", "--seed", "1", "--out", P("clean.safetensors"))
check(r.returncode == 0, f"train the clean model (exit {r.returncode}) {r.stderr[-300:]}")
clean_acc = json.loads(r.stdout)["test_acc"] if r.returncode == 0 else 0.0

# 2. keygen
r = run("wm", "keygen", "--model", P("clean.safetensors"), "--net", "lenet5", "--layer", "conv2.weight",
        "--digits", WM1, "--seed", "7", "--out", P("k1.json"))
check(r.returncode == 0, f"keygen (exit {r.returncode}) {r.stderr.strip()}")
key = json.load(open(P("k1.json")))
check(stat.S_IMODE(os.stat(P("k1.json")).st_mode) == 0o600, "the key file is mode 0600")
w = st_io.read(P("clean.safetensors"))["conv2.weight"]
norms = np.sqrt((w.astype(np.float64) ** 2).reshape(16, -1).sum(1))
check(key["filter"] == int(np.argmax(norms)), f"the key's filter {key['filter']} has the largest L2 norm")
f = w[key["filter"]].reshape(-1)
check(abs(key["a"] * f.min() + key["b"]) < 1e-5 and abs(key["a"] * f.max() + key["b"] - 9) < 1e-5,
      "the map sends the filter's [w_min, w_max] onto [0, 9]")
check(len(set(key["positions"])) == 13 and all(0 <= p < 150 for p in key["positions"]),
      "13 distinct positions inside the 6x5x5 filter")
r = run("wm", "keygen", "--model", P("clean.safetensors"), "--layer", "conv2.weight", "--digits", WM1, "--seed", "7",
        "--out", P("k1-again.json"))
check(r.returncode == 0 and json.load(open(P("k1-again.json"))) == key, "the same seed gives the same key")
r = run("wm", "keygen", "--model", P("clean.safetensors"), "--layer", "conv2.weight", "--digits", WM1, "--seed", "8",
        "--out", P("k1-seed8.json"))
check(r.returncode == 0 and json.load(open(P("k1-seed8.json")))["positions"] != key["positions"],
      "another seed draws other positions")
r = run("wm", "keygen", "--model", P("clean.safetensors"), "--layer", "conv2.weight", "--digits", "3876876994865",
        "--seed", "11", "--out", P("k2.json"))
check(r.returncode == 0, "keygen of a second key (wm2)")
expect_bad(["wm", "keygen", "--model", P("clean.safetensors"), "--layer", "conv2.weight", "--digits", WM1,
            "--out", P("k1.json")], "already", "an existing key is not overwritten without --force")
expect_bad(["wm", "keygen", "--model", P("clean.safetensors"), "--layer", "conv2.weight", "--digits", WM1,
            "--out", P("./clean.safetensors"), "--force"], "--model file", "a key that would replace its --model")
expect_bad(["wm", "keygen", "--model", P("clean.safetensors"), "--layer", "conv2.weight", "--digits", WM1,
            "--out", tmp, "--force"], "folder", "a key --out that is a folder")
expect_bad(["wm", "keygen", "--model", P("clean.safetensors"), "--net", "lenet5", "--layer", "fc1.weight",
            "--digits", WM1, "--out", P("x.json")], "not a conv weight", "a linear layer")
expect_bad(["wm", "keygen", "--model", P("clean.safetensors"), "--layer", "fc1.weight", "--digits", WM1,
            "--out", P("x.json")], "not a conv weight", "a 2-d tensor without --net")
expect_bad(["wm", "keygen", "--model", P("clean.safetensors"), "--layer", "conv1.weight", "--digits", "1" * 26,
            "--out", P("x.json")], "do not fit", "26 digits in a 1x5x5 filter")
expect_bad(["wm", "keygen", "--model", P("clean.safetensors"), "--layer", "conv2.weight", "--digits", "12a",
            "--out", P("x.json")], "0-9", "a digit that is not 0-9")
expect_bad(["wm", "keygen", "--model", P("clean.safetensors"), "--layer", "conv9.weight", "--digits", WM1,
            "--out", P("x.json")], "conv9.weight", "a layer the model lacks")
check(not os.path.exists(P("x.json")), "no key is left behind by a refused keygen")

# 3. the clean model does not carry the watermark
rc, out, _ = verify(P("clean.safetensors"), P("k1.json"))
check(rc == 1 and out.get("verified") is False, f"the clean model fails verification (exit {rc}, {out.get('matches')} of 13)")

# 4. embedding by fine-tuning, and from scratch
r = run("train", *TRAIN, "--init", P("clean.safetensors"), "--wm", P("k1.json"), "--wm-lambda", "0.01",
        "--epochs", EMBED_EPOCHS, "--log", P("wmft.jsonl"), "--out", P("wmft.safetensors"))
check(r.returncode == 0, f"embed by fine-tuning (exit {r.returncode}) {r.stderr[-300:]}")
log = [json.loads(l) for l in open(P("wmft.jsonl"))] if r.returncode == 0 else []
check(len(log) == 3 and log[-1].get("wm_digits") == 13 and log[-1].get("wm_match") == 13
      and log[-1].get("wm_reg", 1) < log[0].get("wm_reg", 0),
      f"the log shows the regularizer and 13 of 13 digits extracting: {log[-1] if log else None}")
rc, out, _ = verify(P("wmft.safetensors"), P("k1.json"))
check(rc == 0 and out.get("verified") is True and "".join(map(str, out.get("extracted", []))) == WM1
      and out.get("filter") == key["filter"] and max(out.get("residual", [1])) < 0.5,
      f"the fine-tuned model verifies: extracted {out.get('extracted')}")
check(0 < out.get("p_chance", 1) < 1e-6, f"the chance of a false pass is reported ({out.get('p_chance')})")
wrapped = {"model." + k: v for k, v in st_io.read(P("wmft.safetensors")).items()}  # Lightning's names
st_io.write(P("wmft-wrapped.safetensors"), wrapped)
rc, out2, err = verify(P("wmft-wrapped.safetensors"), P("k1.json"))
check(rc == 0 and out2.get("extracted") == out.get("extracted") and "'conv2.weight' read as 'model.conv2.weight'" in err,
      f"a suspect whose names all carry 'model.' verifies the same, with a note {err.strip()!r}")
rc, out, _ = verify(P("wmft.safetensors"), P("k2.json"))
check(rc == 1, f"another key (wm2) does not verify on the wm1 model (exit {rc}, {out.get('matches')} matches)")
rc, out, _ = verify(P("wmft.safetensors"), P("k1-seed8.json"))
check(rc == 1, f"the same digits at other positions do not verify (exit {rc}, {out.get('matches')} matches)")
rc, out, _ = verify(P("wmft.safetensors"), P("k1.json"))
check(out.get("suspect_is_keys_model") is False and out.get("clean") is None and out.get("clean_matches") is None,
      "without --clean the JSON says the key was not checked against a clean model")
rc, out, err = verify(P("wmft.safetensors"), P("k1.json"), "--clean", P("clean.safetensors"))
check(rc == 0 and out.get("verified") is True and out.get("clean") == P("clean.safetensors")
      and 0 <= out.get("clean_matches", 99) < 13,
      f"--clean: the key is keygen's of the clean model, which does not read the digits ({out.get('clean_matches')}) {err}")
# a clean model that reads 4 of the digits (set there; the filter and range stay the clean one's,
# so its key is k1 but for model_sha256): --min-match 3 asks for fewer than it reads, yet the
# suspect's 13 are no read-off
c4 = st_io.read(P("clean.safetensors"))
flat4 = c4["conv2.weight"].reshape(16, -1)
for d, p in list(zip(key["digits"], key["positions"]))[:4]:
    flat4[key["filter"], p] = (np.float32(int(d)) - np.float32(key["b"])) / np.float32(key["a"])
st_io.write(P("clean4.safetensors"), c4)
r = run("wm", "keygen", "--model", P("clean4.safetensors"), "--layer", "conv2.weight", "--digits", WM1, "--seed", "7",
        "--out", P("k4.json"))
k4 = json.load(open(P("k4.json"))) if r.returncode == 0 else {}
same = all(k4.get(f) == key[f] for f in ("filter", "positions", "a", "b", "w_min", "w_max"))
rc, out, err = verify(P("wmft.safetensors"), P("k4.json"), "--clean", P("clean4.safetensors"), "--min-match", "3")
check(same and rc == 0 and out.get("verified") is True and out.get("matches") == 13 and out.get("clean_matches", 0) >= 4,
      f"--clean with --min-match 3: a clean model reading {out.get('clean_matches')} digits does not undo the suspect's "
      f"13 (same key but its SHA: {same}; exit {rc}, {err.strip()})")
expect_bad(["wm", "verify", "--model", P("wmft.safetensors"), "--key", P("k1.json"), "--clean", P("wmft.safetensors")],
           "is not the model the key was made from", "--clean names another model than the key's")
# forgeries: hand-picked positions; a key made afterwards from the suspect with the digits its
# weights read (a valid key: seed-drawn positions, keygen's map); its range edited to fit
w_clean = st_io.read(P("clean.safetensors"))["conv2.weight"].reshape(16, -1)
forged = dict(key, positions=sorted(key["positions"]))
json.dump(forged, open(P("picked.json"), "w"))
expect_bad(["wm", "verify", "--model", P("wmft.safetensors"), "--key", P("picked.json")], "seed",
           "a key whose positions were picked by hand")
a32, b32 = np.float32(key["a"]), np.float32(key["b"])
reads = [int(np.floor(a32 * w_clean[key["filter"], p] + b32 + np.float32(0.5))) for p in key["positions"]]
forged = dict(key, digits="".join(str(min(9, max(0, d))) for d in reads))
json.dump(forged, open(P("readoff.json"), "w"))
rc, out, err = verify(P("clean.safetensors"), P("readoff.json"))
check(rc == 1 and out.get("digits_match") is True and out.get("suspect_is_keys_model") is True
      and out.get("verified") is False and "made from" in err,
      f"a key read off the suspect itself is not verified (exit {rc}, {out.get('matches')} matches) {err.strip()}")
copy = st_io.read(P("clean.safetensors"))
copy["fc3.bias"] = copy["fc3.bias"] + np.float32(1e-3)  # another file, the same conv2
st_io.write(P("clean-copy.safetensors"), copy)
rc, out, err = verify(P("clean-copy.safetensors"), P("readoff.json"), "--clean", P("clean.safetensors"))
check(rc == 1 and out.get("digits_match") is True and out.get("clean_matches") == 13 and out.get("verified") is False
      and "read off" in err,
      f"--clean catches digits the clean model reads itself (exit {rc}, clean_matches {out.get('clean_matches')}) {err}")
lo, hi = np.float32(key["w_min"]) - np.float32(0.01), np.float32(key["w_max"])
a = np.float32(9.0) / (hi - lo)
moved = dict(key, w_min=float(lo), a=float(a), b=float(-a * lo))
json.dump(moved, open(P("moved.json"), "w"))
expect_bad(["wm", "verify", "--model", P("wmft.safetensors"), "--key", P("moved.json"), "--clean",
            P("clean.safetensors")], "is not what wm keygen makes of", "--clean: a key whose range was edited")

r = run("train", *TRAIN, "--wm", P("k2.json"), "--epochs", EMBED_EPOCHS, "--seed", "5", "--log", P("wm2.jsonl"),
        "--out", P("wm2.safetensors"))
check(r.returncode == 0, f"embed wm2 from scratch (exit {r.returncode}) {r.stderr[-300:]}")
if r.returncode == 0:
    acc = json.loads(r.stdout)["test_acc"]
    check(acc > 0.95, f"the model trained with the regularizer still learns ({acc:.4f}; clean {clean_acc:.4f})")
rc, out, _ = verify(P("wm2.safetensors"), P("k2.json"))
check(rc == 0, f"the from-scratch model verifies with its key (exit {rc}, {out.get('matches')} of 13)")

# 5. a model watermarked and written by PyTorch: the regularizer written here from the key file
torch.manual_seed(0)
net = torch_nets.build("lenet5", 10)
state = {k: torch.from_numpy(v) for k, v in st_io.read(P("clean.safetensors")).items()}
net.load_state_dict(state)
with gzip.open(os.path.join(SHARED, "mnist", "train-images-idx3-ubyte.gz")) as fh:
    images = np.frombuffer(fh.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)[:4096]
with gzip.open(os.path.join(SHARED, "mnist", "train-labels-idx1-ubyte.gz")) as fh:
    labels = np.frombuffer(fh.read(), np.uint8, offset=8)[:4096]
x_all = (torch.from_numpy(images.astype(np.float32)) / 255.0 - 0.1307) / 0.3081
y_all = torch.from_numpy(labels.astype(np.int64))
k2 = json.load(open(P("k2.json")))
digits = torch.tensor([float(c) for c in k2["digits"]])
flat = torch.tensor([k2["filter"] * 150 + p for p in k2["positions"]])
opt = torch.optim.Adam(net.parameters(), lr=2e-3)
for step in range(600):
    i = (step * 64) % 4096
    loss = F.cross_entropy(net(x_all[i:i + 64]), y_all[i:i + 64])
    mapped = k2["a"] * net.conv2.weight.reshape(-1)[flat] + k2["b"]
    loss = loss + 0.01 * ((digits - mapped) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
st_io.write(P("torch-wm.safetensors"), dict(net.state_dict()), {"format": "pt"})
st_io.write(P("torch-wm-f16.safetensors"), {k: v.half() for k, v in net.state_dict().items()}, {"format": "pt"})
for name in ["torch-wm.safetensors", "torch-wm-f16.safetensors"]:
    rc, out, err = verify(P(name), P("k2.json"))
    check(rc == 0 and "".join(map(str, out.get("extracted", []))) == k2["digits"],
          f"a model watermarked by PyTorch verifies ({name}: exit {rc} {err.strip()})")
rc, out, _ = verify(P("torch-wm.safetensors"), P("k1.json"))
check(rc == 1, f"...and fails with a key it never saw (exit {rc})")

# 6. a checkpoint made with one key is not resumed with another (or with none)
r = run("train", *TRAIN, "--wm", P("k1.json"), "--epochs", EMBED_EPOCHS, "--stop-after", "5",
        "--out", P("stop.safetensors"))
check(r.returncode == 3, f"a preemption drill stops with exit 3 ({r.returncode})")
expect_bad(["train", *TRAIN, "--wm", P("k2.json"), "--epochs", EMBED_EPOCHS, "--resume", "--out", P("stop.safetensors")],
           "wm", "resume with another key")
expect_bad(["train", *TRAIN, "--epochs", EMBED_EPOCHS, "--resume", "--out", P("stop.safetensors")], "wm",
           "resume without the key")
r = run("train", *TRAIN, "--wm", P("k1.json"), "--epochs", EMBED_EPOCHS, "--resume", "--out", P("stop.safetensors"))
check(r.returncode == 0 and verify(P("stop.safetensors"), P("k1.json"))[0] == 0,
      f"resume with the same key finishes and verifies (exit {r.returncode})")

# 7. function-preserving permutations against the three search modes
# "permutation"[c] is the old channel that lands at c
for seed in range(9, 20):  # a seed whose permutation moves the key's filter (1 in 16 leave it)
    r = run("attack", "permute", "--model", P("wmft.safetensors"), "--net", "lenet5", "--layer", "conv2.weight",
            "--seed", str(seed), "--out", P("perm-out.safetensors"))
    perm = json.loads(r.stdout).get("permutation", []) if r.returncode == 0 else []
    if not perm or perm[key["filter"]] != key["filter"]:
        break
check(r.returncode == 0, f"permute conv2's output channels (exit {r.returncode}) {r.stderr.strip()}")
rc_key, _, _ = verify(P("perm-out.safetensors"), P("k1.json"), "--search", "key")
rc, out, _ = verify(P("perm-out.safetensors"), P("k1.json"))
moved = perm.index(key["filter"]) if perm else -1
check(rc == 0 and out.get("filter") != key["filter"] and out.get("filter") == moved,
      f"the filter search (default) finds the digits in filter {out.get('filter')} (the permutation sent "
      f"{key['filter']} to {moved})")
check(rc_key == 1 or moved == key["filter"], f"reading only the key's filter fails after the permutation ({rc_key})")
r = run("attack", "permute", "--model", P("wmft.safetensors"), "--net", "lenet5", "--layer", "conv1.weight",
        "--seed", "4", "--out", P("perm-in.safetensors"))
check(r.returncode == 0, f"permute conv1's outputs = conv2's input channels (exit {r.returncode}) {r.stderr.strip()}")
rc_f, out_f, _ = verify(P("perm-in.safetensors"), P("k1.json"))
rc_c, out_c, _ = verify(P("perm-in.safetensors"), P("k1.json"), "--search", "channels")
check(rc_f == 1, f"an input-channel permutation defeats the filter search ({out_f.get('matches')} of 13)")
check(rc_c == 0 and out_c.get("input_permuted") is True and out_c.get("p_chance", 1) < 1e-3,
      f"the channel search recovers it (exit {rc_c}, chance {out_c.get('p_chance')})")
rc, _, _ = verify(P("clean.safetensors"), P("k1.json"), "--search", "channels")
check(rc == 1, "the clean model fails the channel search too")

# 8. bad input to verify
huge = np.ones((1 << 24, 1, 1, 1), np.uint8)  # a 4-d tensor with a dimension of 2^24: no conv weight
st_io.write(P("huge-dim.safetensors"), {"w": huge})
expect_bad(["wm", "keygen", "--model", P("huge-dim.safetensors"), "--layer", "w", "--digits", "1234", "--out",
            P("kh.json")], "2^24", "wm keygen of a layer with a dimension of 2^24 (crashed before)")
expect_bad(["wm", "verify", "--model", P("wmft.safetensors"), "--key", P("nokey.json")], "nokey.json", "a missing key")
with open(P("bad.json"), "w") as fh:
    fh.write('{"format": "dnnguard-wmkey-1", "layer": "conv2.weight"')
expect_bad(["wm", "verify", "--model", P("wmft.safetensors"), "--key", P("bad.json")], "bad.json", "a truncated key")
bad = dict(key, positions=key["positions"][:-1])
json.dump(bad, open(P("short.json"), "w"))
expect_bad(["wm", "verify", "--model", P("wmft.safetensors"), "--key", P("short.json")], "positions",
           "a key with a position missing")
other = dict(key, layer="conv1.weight")
json.dump(other, open(P("shape.json"), "w"))
expect_bad(["wm", "verify", "--model", P("wmft.safetensors"), "--key", P("shape.json")], "conv1.weight",
           "a key whose layer has another shape in the model")
renamed = dict(key, layer="features.3.weight")
json.dump(renamed, open(P("renamed.json"), "w"))
expect_bad(["wm", "verify", "--model", P("wmft.safetensors"), "--key", P("renamed.json")], "no tensor",
           "a model without the key's tensor")
expect_bad(["wm", "verify", "--model", P("nomodel.safetensors"), "--key", P("k1.json")], "nomodel", "a missing model")
expect_bad(["wm", "verify", "--model", P("wmft.safetensors"), "--key", P("k1.json"), "--search", "all"], "search",
           "an unknown search mode")
expect_bad(["wm", "verify", "--model", P("wmft.safetensors"), "--key", P("k1.json"), "--min-match", "14"],
           "min-match", "--min-match above the digit count")
expect_bad(["wm", "verify", "--model", P("wmft.safetensors"), "--key", P("k1.json"), "--min-match", "0"],
           "min-match", "--min-match 0 (it used to mean all digits)")
# keys that cannot prove anything: matching digits are not a verdict when a layer without the
# watermark would match as easily (p_chance above --max-p-chance, default 1e-6)
r = run("wm", "keygen", "--model", P("clean.safetensors"), "--layer", "conv2.weight", "--digits", "5", "--seed", "7",
        "--out", P("one.json"))
rc, out, err = verify(P("clean.safetensors"), P("one.json"))
check(r.returncode == 0 and rc == 1 and out.get("digits_match") is True and out.get("verified") is False
      and out.get("p_chance", 0) > 1e-6 and "not a proof" in err,
      f"a 1-digit key on the model it was made from: the digit matches, not verified (exit {rc}, {out.get('p_chance')})")
rc, out, err = verify(P("clean.safetensors"), P("k1.json"), "--min-match", "3")
check(rc == 1 and out.get("digits_match") is True and out.get("verified") is False and out.get("p_chance", 0) > 0.01,
      f"--min-match 3 of 13 on a clean model: p_chance is the chance of 3 or more ({out.get('p_chance')}), not verified")
rc, out, err = verify(P("wmft.safetensors"), P("k1.json"), "--min-match", "12")
check(rc == 0 and out.get("verified") is True and 0 < out.get("p_chance", 1) < 1e-6,
      f"--min-match 12 on the watermarked model: still verified ({out.get('p_chance')})")
forged = dict(key, a=1e-9, b=5.0, digits="5555555555555")
json.dump(forged, open(P("forged.json"), "w"))
open(P("nul.json"), "w").write(json.dumps(key).replace('"digits"', '"digits\\u0000"', 1))
expect_bad(["wm", "verify", "--model", P("clean.safetensors"), "--key", P("nul.json")], "u0000",
           "a key naming a member 'digits\\u0000' (cJSON reads 'digits', Python another member)")
expect_bad(["wm", "verify", "--model", P("clean.safetensors"), "--key", P("forged.json")], "9 / (w_max - w_min)",
           "a key whose map is not its range's (every weight would read 5)")
wide = dict(key, w_min=-1.1e6, w_max=0.9e6, a=9 / 2e6, b=9 / 2e6 * 1.1e6, digits="5555555555555")
json.dump(wide, open(P("wide.json"), "w"))
rc, out, err = verify(P("clean.safetensors"), P("wide.json"), "--search", "key")
check(rc == 1 and out.get("digits_match") is True and out.get("verified") is False and out.get("p_chance") == 1,
      f"a consistent map over an absurd range reads every weight as 5: p_chance 1, not verified (exit {rc}, {out})")
expect_bad(["train", *TRAIN, "--wm", P("k1.json"), "--wm-lambda", "-1", "--epochs", "1", "--out", P("never.safetensors")],
           "--wm-lambda", "a negative --wm-lambda (it pushes the weights away from the digits)")
expect_bad(["wm", "verify", "--model", P("wmft.safetensors"), "--key", P("k1.json"), "--max-p-chance", "0"],
           "max-p-chance", "--max-p-chance 0")
rc, out, err = verify(P("wmft.safetensors"), P("k1.json"), "--max-p-chance", "1e-100")
check(rc == 1 and out.get("max_p_chance") == 1e-100 and out.get("digits_match") is True and "not a proof" in err,
      f"--max-p-chance is a double: 1e-100 is a bound (below a float's range), and the match is not enough ({rc}, {err})")
expect_bad(["train", *TRAIN, "--wm", P("bad.json"), "--epochs", "1", "--out", P("never.safetensors")], "bad.json",
           "training with a corrupt key")
expect_bad(["train", "--net", "vgg16-cifar", "--data", "synthetic:3,32,32,10,64", "--wm", P("k1.json"), "--epochs", "1",
            "--out", P("never.safetensors")], "conv2.weight", "training a net that lacks the key's layer")

done()
