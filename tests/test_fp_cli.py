"""tests/test_fp_cli.py — ActiveGuard's users' fingerprints end to end on real MNIST with LeNet-5:
`fp issue` (every user issued, the 0600 registry, each PNG's SHA-256, size, L2 distance to its source
image, repeatability), PyTorch as an independent oracle of what issue claims (argmax = the user's
class, softmax within the margin of its confidence, the source classified right), `fp auth` on every
fingerprint (plain and --strict), on a one-pixel edit, a re-encoding, an unlisted identity and clean
images, `predict` (the control layer's random answers at chance level and repeatable by seed, the
model's answers behind a fingerprint, equal to eval's and to PyTorch's), `fp eval` (Table II: fresh
fingerprints per user), `attack forge` (Table IV: clean images against PyTorch's rule, FGSM examples
built the same way in PyTorch, untargeted C&W), and bad input (one line on
stderr, exit 2)."""
import gzip
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402
import torch_nets  # noqa: E402
from cli_check import DNNGUARD, MNIST, SHARED, check, done, expect_bad, parse, run, sha256  # noqa: E402

T0 = time.time()
tmp = tempfile.mkdtemp(prefix="dg-fp-")
P = lambda name: os.path.join(tmp, name)
MODEL = P("m.safetensors")
FPS = P("fps")
REG = os.path.join(FPS, "registry.json")
CLASSES, CONFS = [0, 1, 2], [0.3, 0.5]


def auth(png, *extra, registry=REG, model=MODEL):
    r = run("fp", "auth", "--model", model, "--registry", registry, "--input", png, *extra)
    return r.returncode, parse(r.stdout), r.stderr.strip()


def idx(name, offset, magic):
    with gzip.open(os.path.join(SHARED, "mnist", name)) as fh:
        raw = fh.read()
    assert int.from_bytes(raw[:4], "big") == magic, f"{name}: not an IDX file"
    return np.frombuffer(raw, np.uint8, offset=offset)


test_images = idx("t10k-images-idx3-ubyte.gz", 16, 2051).reshape(-1, 28, 28)
test_labels = idx("t10k-labels-idx1-ubyte.gz", 8, 2049)

# 1. the protected model, and another one (its pruned copy)
r = run("train", "--net", "lenet5", "--data", MNIST, "--epochs", "1", "--opt", "adam", "--lr", "1e-3", "--batch", "128",
        "--seed", "1", "--out", MODEL)
check(r.returncode == 0, f"train LeNet-5 for one epoch (exit {r.returncode}) {r.stderr[-300:]}")
r = run("attack", "prune", "--model", MODEL, "--rate", "0.3", "--out", P("other.safetensors"))
check(r.returncode == 0, f"another model: the protected one pruned by 30% (exit {r.returncode}) {r.stderr.strip()}")
r = run("eval", "--model", MODEL, "--net", "lenet5", "--data", MNIST)
eval_acc = parse(r.stdout).get("accuracy", -1.0)
check(r.returncode == 0 and eval_acc > 0.95, f"eval: accuracy {eval_acc}")

# 2. fp issue: 3 classes × 2 confidences = 6 users
ISSUE = ["fp", "issue", "--model", MODEL, "--net", "lenet5", "--data", MNIST, "--classes", "0-2", "--conf", "0.3,0.5",
         "--iters", "1000", "--search-steps", "3", "--seed", "1"]
t = time.time()
r = run(*ISSUE, "--out", FPS)
issue_s = time.time() - t
out = parse(r.stdout)
check(r.returncode == 0 and out.get("users") == 6 and out.get("issued") == 6 and out.get("listed") == 6
      and out.get("not_issued") == [],
      f"fp issue: exit {r.returncode}, {out.get('issued')} of {out.get('users')} issued in {issue_s:.1f} s "
      f"{r.stderr.strip()[-300:]}")
before = open(REG, "rb").read() if os.path.exists(REG) else b""
expect_bad([*ISSUE, "--out", FPS], "already there", "fp issue into a folder that holds a registry (no --force)")
check(before and open(REG, "rb").read() == before, "the refused fp issue left the registry as it was")
check(abs(out.get("capacity", 0) - 33.0) < 1e-6, f"capacity 3 × (0.51 − 0.29)/0.02 = 33: {out.get('capacity')}")
reg = json.load(open(REG)) if os.path.exists(REG) else {"users": []}
users = reg["users"]
check(stat.S_IMODE(os.stat(REG).st_mode) == 0o600 if os.path.exists(REG) else False, "registry.json is mode 0600")
check(reg.get("format") == "dnnguard-fp-registry-1" and reg.get("net") == "lenet5" and reg.get("shape") == [1, 28, 28]
      and reg.get("classes") == 10 and reg.get("split") == "test" and reg.get("data") == MNIST,
      f"the registry names the net, shape, classes and data: {reg.get('net')} {reg.get('shape')} {reg.get('data')}")
check(reg.get("model_sha256") == sha256(MODEL), "the registry's model_sha256 is the model file's SHA-256")
check(reg.get("fingerprint_classes") == CLASSES and reg.get("confidences") == CONFS and reg.get("eps") == 0.01
      and reg.get("margin") == 0.005,
      f"L_fp {reg.get('fingerprint_classes')}, C_fp {reg.get('confidences')}, eps {reg.get('eps')}, "
      f"margin {reg.get('margin')}")
check(np.allclose(reg.get("mean", [0]), [0.1307], atol=1e-3) and np.allclose(reg.get("std", [0]), [0.3081], atol=1e-3),
      f"MNIST's normalisation: mean {reg.get('mean')} std {reg.get('std')}")
check([u["id"] for u in users] == list(range(6))
      and [(u["class"], u["confidence"]) for u in users] == [(c, p) for c in CLASSES for p in CONFS],
      "user t·T + j holds class t and confidence j")
check(len({u["source_index"] for u in users}) == len(users), "every user got a different source image")
listing = sorted(os.listdir(FPS)) if os.path.isdir(FPS) else []
check(listing == sorted(["registry.json"] + [u["file"] for u in users]),
      f"the folder holds the registry and the listed PNGs, nothing else: {listing}")

# 3. each fingerprint file against the registry, and PyTorch as the oracle of its class and confidence
net = torch_nets.LeNet5()
net.load_state_dict({k: torch.from_numpy(v) for k, v in st_io.read(MODEL).items()})
net.eval()
mean, std = reg.get("mean", [0.1307])[0], reg.get("std", [0.3081])[0]


def torch_probs(pixels):
    """softmax of the model on uint8 images [n, 28, 28], normalised as the registry says"""
    x = (torch.from_numpy(pixels.astype(np.float32)).reshape(-1, 1, 28, 28) / 255.0 - mean) / std
    with torch.no_grad():
        return torch.softmax(net(x).double(), 1).numpy()


pngs = {}
for u in users:
    path = os.path.join(FPS, u["file"])
    if not check(os.path.isfile(path), f"user {u['id']}: {u['file']} exists"):
        continue
    pngs[u["id"]] = path
    check(sha256(path) == u["sha256"], f"user {u['id']}: the file's SHA-256 is the registry's")
    im = Image.open(path)
    check(im.mode == "L" and im.size == (28, 28), f"user {u['id']}: a 28x28 grey PNG ({im.mode} {im.size})")
    a = np.asarray(im.convert("L"))
    src = test_images[u["source_index"]]
    l2 = float(np.sqrt((((a.astype(np.float64) - src) / 255.0) ** 2).sum()))
    check(abs(l2 - u["l2"]) < 1e-4, f"user {u['id']}: L2 to source image {u['source_index']} is {l2:.6f}, "
                                    f"the registry says {u['l2']}")
    check(not np.array_equal(a, src) and l2 > 0.1, f"user {u['id']}: the fingerprint is not its source image")
    p_fp, p_src = torch_probs(np.stack([a, src]))
    check(test_labels[u["source_index"]] != u["class"] and int(p_src.argmax()) == test_labels[u["source_index"]],
          f"user {u['id']}: its source (label {test_labels[u['source_index']]}) is another class, classified right")
    # PyTorch and dnnguard differ by ~1e-7 in a probability: 1e-5 of slack on the margin
    p = float(p_fp[u["class"]])
    check(int(p_fp.argmax()) == u["class"] and abs(p - u["confidence"]) < reg["margin"] + 1e-5,
          f"user {u['id']}: PyTorch says class {int(p_fp.argmax())} (want {u['class']}) at {p:.6f} "
          f"(want {u['confidence']} ± {reg['margin']})")
    check(abs(p - u["confidence_at_issue"]) < 1e-4,
          f"user {u['id']}: PyTorch's {p:.7f} = confidence_at_issue {u['confidence_at_issue']}")

# 4. the same command and seed issue the same fingerprints
r = run(*ISSUE, "--out", P("fps-again"))
again = P("fps-again/registry.json")
check(r.returncode == 0 and os.path.exists(again) and open(again).read() == open(REG).read(),
      f"the same seed issues the same registry, file for file (exit {r.returncode})")

# 4b. only some classes in L_fp: the identity is still class·T + j (DESIGN's t·T + j), so class 7 at
# the second of two confidences is user 15, its file user-15.png, and fp auth names that user
r = run("fp", "issue", "--model", MODEL, "--net", "lenet5", "--data", MNIST, "--classes", "3,7", "--conf", "0.3,0.5",
        "--users", "4", "--iters", "1000", "--search-steps", "3", "--seed", "1", "--out", P("fps-some"))
some = json.load(open(P("fps-some/registry.json"))) if os.path.exists(P("fps-some/registry.json")) else {"users": []}
check(r.returncode == 0 and [(u["id"], u["class"], u["confidence"], u["file"]) for u in some["users"]]
      == [(6, 3, 0.3, "user-06.png"), (7, 3, 0.5, "user-07.png"), (14, 7, 0.3, "user-14.png"), (15, 7, 0.5, "user-15.png")],
      f"--classes 3,7 --conf 0.3,0.5: users 6, 7, 14, 15 (exit {r.returncode}) "
      f"{[(u['id'], u['class'], u['confidence']) for u in some['users']]}")
# a user left without a fingerprint is named by identity too: one C&W step authenticates nobody
r = run("fp", "issue", "--model", MODEL, "--net", "lenet5", "--data", MNIST, "--classes", "3,7", "--conf", "0.3,0.5",
        "--users", "4", "--iters", "1", "--search-steps", "1", "--retries", "0", "--seed", "1", "--out", P("fps-none"))
left = parse(r.stdout)
check(r.returncode == 1 and left.get("issued") == 0 and left.get("not_issued") == [6, 7, 14, 15],
      f"fp issue names the users left without a fingerprint by identity (exit {r.returncode}, "
      f"not_issued {left.get('not_issued')})")
if os.path.exists(P("fps-some/user-15.png")):
    rc, o, err = auth(P("fps-some/user-15.png"), registry=P("fps-some/registry.json"))
    check(rc == 0 and o.get("user") == 15 and o.get("rule_user") == 15 and o.get("class") == 7,
          f"fp auth of user-15.png names user 15, class 7 (exit {rc}, user {o.get('user')}) {err}")
# --force over that registry with fewer users: the replaced registry's other PNGs go (they would look
# like this registry's fingerprints), the ones it issues again stay
r = run("fp", "issue", "--model", MODEL, "--net", "lenet5", "--data", MNIST, "--classes", "3", "--conf", "0.3,0.5",
        "--iters", "1000", "--search-steps", "3", "--seed", "1", "--out", P("fps-some"), "--force")
check(r.returncode == 0 and sorted(f for f in os.listdir(P("fps-some")) if f.endswith(".png"))
      == ["user-06.png", "user-07.png"] and "removed 2 fingerprints" in r.stderr,
      f"fp issue --force removes the replaced registry's PNGs it does not issue again "
      f"({sorted(os.listdir(P('fps-some')))}) {r.stderr.strip()[-200:]}")

# 5. fp auth on every fingerprint, plain and strict
for u in users:
    if u["id"] not in pngs:
        continue
    rc, o, err = auth(pngs[u["id"]])
    check(rc == 0 and o.get("authorized") is True and o.get("user") == u["id"] and o.get("class") == u["class"]
          and abs(o.get("confidence", 0) - u["confidence"]) < 1e-6 and o.get("predicted") == u["class"]
          and abs(o.get("p_max", 0) - u["confidence_at_issue"]) < 1e-5 and o.get("user_listed") is True,
          f"fp auth {u['file']}: exit {rc}, user {o.get('user')} class {o.get('class')} conf {o.get('confidence')} "
          f"p_max {o.get('p_max')} {err}")
    rc, o, err = auth(pngs[u["id"]], "--strict")
    check(rc == 0 and o.get("user") == u["id"] and o.get("issued_file") is True and o.get("strict") is True
          and o.get("sha256") == u["sha256"], f"fp auth --strict {u['file']}: exit {rc} {err}")

# 6. edits of a fingerprint: one pixel ±1, and the same pixels encoded again
nonstrict_edit = None
if 1 in pngs:
    u = users[1]
    a = np.asarray(Image.open(pngs[1])).copy()
    y, x = np.unravel_index(int(np.argmax(np.abs(a.astype(int) - 128) < 100)), a.shape)  # a mid-grey pixel
    a[y, x] = a[y, x] + 1 if a[y, x] < 255 else a[y, x] - 1
    Image.fromarray(a, "L").save(P("edit.png"))
    rc, o, _ = auth(P("edit.png"), "--strict")
    check(rc == 1 and o.get("issued_file") is False and o.get("authorized") is False and o.get("user") == -1
          and o.get("class") == -1 and "confidence" in o and o["confidence"] is None
          and (o.get("rule_user"), o.get("user_listed")) in ((1, True), (-1, False)),
          f"--strict refuses a copy with one pixel changed by 1 (exit {rc}, issued_file {o.get('issued_file')}, "
          f"rule_user {o.get('rule_user')} listed {o.get('user_listed')})")
    rc, o, _ = auth(P("edit.png"))
    nonstrict_edit = rc
    p_edit = float(torch_probs(a[None])[0].max())
    rule = int(torch_probs(a[None])[0].argmax()) == u["class"] and abs(p_edit - u["confidence"]) < reg["eps"]
    check(rc in (0, 1) and (rc == 0) == rule,
          f"without --strict the one-pixel edit {'passes' if rc == 0 else 'is refused'} (exit {rc}, p_max "
          f"{o.get('p_max')}), as PyTorch's {p_edit:.6f} against 0.5 ± 0.01 says")
    same = np.asarray(Image.open(pngs[1]))
    Image.fromarray(same, "L").save(P("reencoded.png"), optimize=True)
    rc, o, _ = auth(P("reencoded.png"))
    check(rc == 0 and o.get("user") == 1, f"the same pixels encoded by PIL authenticate (exit {rc})")
    if sha256(P("reencoded.png")) != users[1]["sha256"]:
        rc, o, _ = auth(P("reencoded.png"), "--strict")
        check(rc == 1 and o.get("issued_file") is False and o.get("rule_user") == 1 and o.get("user_listed") is True
              and o.get("user") == -1, f"...but not under --strict: other bytes; the rule names user 1, who is listed, "
              f"but nobody is authorised (exit {rc}, {o})")

# 7. an identity the rule names but the registry does not list (its fingerprint "failed")
if 0 in pngs:
    partial = dict(reg, users=users[1:])
    with open(P("partial.json"), "w") as fh:
        json.dump(partial, fh)
    rc, o, _ = auth(pngs[0], registry=P("partial.json"))
    check(rc == 1 and o.get("rule_met") is True and o.get("rule_user") == 0 and o.get("user_listed") is False
          and o.get("authorized") is False,
          f"user 0's fingerprint against a registry without user 0: exit {rc}, rule_met {o.get('rule_met')}")
    rc, o, _ = auth(pngs[1], registry=P("partial.json"))
    check(rc == 0 and o.get("user") == 1, f"...while user 1 still authenticates there (exit {rc})")

# 8. clean test images: none authenticates; auth's prediction is PyTorch's
clean_idx = list(range(0, 500, 10))
probs = torch_probs(test_images[clean_idx])
wrong = []
for k, i in enumerate(clean_idx):
    path = P(f"clean-{i}.png")
    Image.fromarray(test_images[i], "L").save(path)
    rc, o, err = auth(path)
    torch_rule = int(probs[k].argmax()) in CLASSES and min(abs(probs[k].max() - c) for c in CONFS) < 0.01
    if rc != 1 or o.get("authorized") is not False or o.get("predicted") != int(probs[k].argmax()) or torch_rule:
        wrong.append((i, rc, o.get("predicted"), int(probs[k].argmax()), err))
check(not wrong, f"50 clean test images: none authenticates, each predicted as PyTorch predicts ({wrong[:3]})")

# 9. predict: the control layer
PRED = ["predict", "--model", MODEL, "--net", "lenet5", "--data", MNIST]


def predict(*extra):
    r = run(*PRED, *extra)
    return r.returncode, parse(r.stdout), r.stderr.strip()


def answers(path):
    try:
        return np.array([int(line) for line in open(path).read().split()])
    except (OSError, ValueError):
        return np.zeros(0, int)


rc, o, err = predict("--out", P("ans-1.txt"))
a1 = answers(P("ans-1.txt"))
acc = o.get("accuracy_unauthorized", -1)
check(rc == 0 and o.get("path") == "random" and o.get("authorized") is False and o.get("images") == 10000,
      f"predict without a fingerprint: exit {rc}, path {o.get('path')} {err}")
check(0.07 <= acc <= 0.13 and o.get("accuracy") == acc, f"unauthorised accuracy {acc} at chance (= accuracy "
                                                        f"{o.get('accuracy')})")
check(abs(o.get("accuracy_authorized", -1) - eval_acc) < 1e-6, "the report's model accuracy is eval's")
check(len(a1) == 10000 and abs(float(np.mean(a1 == test_labels)) - acc) < 1e-6,
      f"the answers file holds 10000 answers with accuracy {float(np.mean(a1 == test_labels)) if len(a1) else None}")
counts = np.bincount(a1, minlength=10) if len(a1) and a1.min() >= 0 else np.zeros(1)
check(len(counts) == 10 and counts.min() > 850 and counts.max() < 1150, f"random answers spread over 10 classes: {counts}")
rc, o, _ = predict("--out", P("ans-1b.txt"))
check(rc == 0 and open(P("ans-1b.txt"), "rb").read() == open(P("ans-1.txt"), "rb").read(),
      "the same seed gives the same answers file")
rc, o, _ = predict("--seed", "2", "--out", P("ans-2.txt"))
a2 = answers(P("ans-2.txt"))
differ = float(np.mean(a1 != a2)) if len(a2) == len(a1) else 0.0
check(rc == 0 and o.get("seed") == 2 and 0.85 < differ < 0.95, f"seed 2 gives other answers ({differ:.3f} differ)")

if 1 in pngs:
    rc, o, err = predict("--fingerprint", pngs[1], "--registry", REG, "--out", P("ans-fp.txt"))
    afp = answers(P("ans-fp.txt"))
    check(rc == 0 and o.get("path") == "model" and o.get("authorized") is True and o.get("user") == 1
          and abs(o.get("accuracy", -1) - eval_acc) < 1e-6,
          f"predict with user 1's fingerprint: path {o.get('path')}, accuracy {o.get('accuracy')} (eval {eval_acc}) "
          f"{err}")
    with torch.no_grad():
        x = (torch.from_numpy(test_images.astype(np.float32)).reshape(-1, 1, 28, 28) / 255.0 - mean) / std
        torch_pred = net(x).argmax(1).numpy()
    agree = float(np.mean(afp == torch_pred)) if len(afp) == 10000 else 0.0
    check(agree > 0.999, f"the authorised answers are PyTorch's predictions ({agree:.5f} agree)")
    if nonstrict_edit is not None:
        rc, o, _ = predict("--fingerprint", P("edit.png"), "--registry", REG)
        check(rc == nonstrict_edit and (o.get("path") == "model") == (nonstrict_edit == 0),
              f"predict and fp auth agree on the one-pixel edit (path {o.get('path')}, exit {rc})")
    rc, o, _ = predict("--fingerprint", P("clean-0.png"), "--registry", REG)
    check(rc == 1 and o.get("path") == "random" and o.get("accuracy") == acc,
          f"a clean image as the fingerprint gets the random answers and exit 1, as fp auth (path {o.get('path')}, "
          f"{o.get('accuracy')}, exit {rc})")

# 10. fp eval (Table II): fresh fingerprints per user, each counted when it authenticates as its user
rc_e = run("fp", "eval", "--model", MODEL, "--registry", REG, "--per-user", "2", "--iters", "1000", "--search-steps", "3",
           "--table", P("table2.md"))
ev = parse(rc_e.stdout)
ev_users = ev.get("users", [])
check(rc_e.returncode == 0 and [u.get("id") for u in ev_users] == list(range(6))
      and all(u.get("fingerprints") == 2 for u in ev_users),
      f"fp eval: exit {rc_e.returncode}, 2 fresh fingerprints for each of the 6 users {rc_e.stderr.strip()[-300:]}")
auth_total = sum(u.get("authenticated", 0) for u in ev_users)
check(ev.get("fingerprints") == 12 and ev.get("authenticated") == auth_total
      and abs(ev.get("rate", -1) - auth_total / 12) < 1e-6
      and abs(ev.get("min_user_rate", -1) - min((u.get("rate", 0) for u in ev_users), default=-1)) < 1e-6,
      f"fp eval's totals are the sum of its users: {ev.get('authenticated')} of {ev.get('fingerprints')}, "
      f"rate {ev.get('rate')}, lowest user {ev.get('min_user_rate')}")
check(all((u.get("class"), u.get("confidence")) == (c, p) for u, (c, p) in zip(ev_users, [(c, p) for c in CLASSES
                                                                                        for p in CONFS])),
      "fp eval reports each user's class and confidence as the registry holds them")
# one attempt each at the test's short settings (9 of 12 here); the tuned run in docs/fingerprints.md reaches 100%
check(ev.get("rate", 0) >= 0.5, f"fresh fingerprints authenticate as their users: {ev.get('rate')} (paper 96-100%)")
rows = [line for line in open(P("table2.md")).read().splitlines() if line.startswith("| ") and line[2].isdigit()] \
    if os.path.exists(P("table2.md")) else []
check(len(rows) == 6 and all(int(r.split("|")[5]) == u.get("authenticated") for r, u in zip(rows, ev_users)),
      f"--table writes one Markdown row per user with its count ({len(rows)} rows)")

check(all((u.get("mean_l2") is None) == (u.get("authenticated") == 0) and (u.get("mean_l2") is None
                                                                           or u["mean_l2"] > 0) for u in ev_users),
      f"a user's mean_l2 is over its authenticated fingerprints, null when none: {[u.get('mean_l2') for u in ev_users]}")
# fresh sources: none twice for a user. Ten sources (one per class, a folder:DIR test split) leave a
# user at most 9 of another class, so --per-user 12 makes at most 9 attempts (it drew with replacement)
for digit in range(10):
    os.makedirs(P(f"fold/test/{digit}"), exist_ok=True)
    Image.fromarray(test_images[np.flatnonzero(test_labels == digit)[0]]).save(P(f"fold/test/{digit}/a.png"))
# (--batch 5: a batch that skips slots must not make the next one walk them again, with the user's
# sources forgotten: that gave users more attempts than sources)
for fp_batch in ("300", "5"):
    rc_f = run("fp", "eval", "--model", MODEL, "--registry", REG, "--data", f"folder:{P('fold')}", "--per-user", "12",
               "--iters", "1", "--search-steps", "1", "--batch", fp_batch)
    made = [u.get("fingerprints") for u in parse(rc_f.stdout).get("users", [])]
    check(rc_f.returncode == 0 and len(made) == 6 and all(1 <= m <= 9 for m in made),
          f"fp eval --batch {fp_batch} draws no source twice for a user: at most 9 attempts of 12 from 10 sources "
          f"({made}) {rc_f.stderr[-200:]}")
# one C&W iteration from the clean image authenticates nobody: no mean distortion to report, not 0
rc_n = run("fp", "eval", "--model", MODEL, "--registry", REG, "--per-user", "1", "--iters", "1", "--search-steps", "1",
           "--table", P("table2-none.md"))
ev_n = parse(rc_n.stdout)
rows_n = [line for line in open(P("table2-none.md")).read().splitlines() if line.startswith("| ") and line[2].isdigit()] \
    if os.path.exists(P("table2-none.md")) else []
check(ev_n.get("authenticated") == 0 and len(ev_n.get("users", [])) == 6
      and all(u.get("mean_l2", 0) is None for u in ev_n["users"]) and len(rows_n) == 6
      and all(r.rstrip().endswith("| — |") for r in rows_n),
      f"fp eval where no fingerprint authenticates: mean_l2 null and — in the table (exit {rc_n.returncode}, "
      f"{rc_n.stdout.strip()[:300]})")

# 11. attack forge (Table IV): clean images, FGSM examples and untargeted C&W examples as fake fingerprints;
#     PyTorch applies the same rule to the same images (clean) and builds the same FGSM examples
FORGE = ["attack", "forge", "--model", MODEL, "--registry", REG]
N_FORGE = 1000


def torch_rule(p):
    """(rule met, near the boundary) for softmax rows p: argmax in L_fp and |max P - c| < eps for some c"""
    gap = np.array([min(abs(row.max() - c) for c in CONFS) for row in p])
    met = np.isin(p.argmax(1), CLASSES) & (gap < 0.01)
    return met, np.abs(gap - 0.01) < 1e-5


r = run(*FORGE, "--method", "clean", "--n", str(N_FORGE), "--batch", "300")
fc = parse(r.stdout)
p_clean = torch_probs(test_images[:N_FORGE])
met, near = torch_rule(p_clean)
torch_wrong = int((p_clean.argmax(1) != test_labels[:N_FORGE]).sum())
check(r.returncode == 0 and fc.get("tried") == N_FORGE and fc.get("fakes") == N_FORGE
      and abs(fc.get("misclassified", -99) - torch_wrong) <= 1,
      f"forge clean: exit {r.returncode}, {fc.get('fakes')} fakes, {fc.get('misclassified')} misclassified "
      f"(PyTorch {torch_wrong}) {r.stderr.strip()[-200:]}")
check(abs(fc.get("authenticated", -99) - int(met.sum())) <= int(near.sum())
      and abs(fc.get("rate", -1) - fc.get("authenticated", 0) / N_FORGE) < 1e-6 and fc.get("strict_authenticated") == 0,
      f"forge clean: {fc.get('authenticated')} clean images meet the rule, PyTorch says {int(met.sum())}; "
      f"none is an issued file ({fc.get('strict_authenticated')})")
FGSM_EPS = 0.07  # not a multiple of 1/510, so no pixel lands on a rounding tie
N_FGSM = 300
x01 = torch.from_numpy(test_images[:N_FGSM].astype(np.float32) / np.float32(255.0)).reshape(-1, 1, 28, 28)
x01.requires_grad_(True)
loss = torch.nn.functional.cross_entropy(net((x01 - mean) / std), torch.from_numpy(test_labels[:N_FGSM].astype(np.int64)))
loss.backward()
adv = torch.clamp(x01.detach() + np.float32(FGSM_EPS) * torch.sign(x01.grad), 0, 1)
adv_bytes = torch.clamp(torch.floor(adv * 255.0 + 0.5), 0, 255).to(torch.uint8).reshape(-1, 28, 28).numpy()
p_fgsm = torch_probs(adv_bytes)
met, near = torch_rule(p_fgsm)
torch_wrong = int((p_fgsm.argmax(1) != test_labels[:N_FGSM]).sum())
r = run(*FORGE, "--method", "fgsm", "--n", str(N_FGSM), "--fgsm-eps", str(FGSM_EPS), "--batch", "128")
ff = parse(r.stdout)
check(r.returncode == 0 and ff.get("fakes") == N_FGSM and abs(ff.get("fgsm_eps", 0) - FGSM_EPS) < 1e-6
      and abs(ff.get("misclassified", -99) - torch_wrong) <= 2 and torch_wrong > N_FGSM // 10,
      f"forge fgsm (eps {FGSM_EPS}): {ff.get('misclassified')} of {ff.get('fakes')} misclassified, PyTorch's FGSM "
      f"{torch_wrong} {r.stderr.strip()[-200:]}")
check(abs(ff.get("authenticated", -99) - int(met.sum())) <= 2 + int(near.sum()),
      f"forge fgsm: {ff.get('authenticated')} meet the rule, PyTorch's FGSM images {int(met.sum())}")
r = run(*FORGE, "--method", "cw", "--n", "20", "--iters", "200", "--search-steps", "1")
fw = parse(r.stdout)
check(r.returncode == 0 and fw.get("tried") == 20 and 0 < fw.get("fakes", 0) <= 20 and fw.get("cw_mean_l2", 0) > 0
      and 0 <= fw.get("rate", -1) <= 1 and fw.get("strict_authenticated") == 0,
      f"forge cw: {fw.get('fakes')} of 20 untargeted C&W examples made (mean L2 {fw.get('cw_mean_l2')}), "
      f"{fw.get('authenticated')} authenticate {r.stderr.strip()[-200:]}")

# 12. bad input: one line on stderr, exit 2
with open(REG) as fh:
    text = fh.read()
with open(P("truncated.json"), "w") as fh:
    fh.write(text[: len(text) // 2])
FP1 = pngs.get(1, P("clean-0.png"))
expect_bad(["fp", "auth", "--model", MODEL, "--registry", P("truncated.json"), "--input", FP1], "truncated.json",
           "a truncated registry")
expect_bad(["fp", "auth", "--model", MODEL, "--registry", MODEL, "--input", FP1], "m.safetensors",
           "a model file given as the registry")
expect_bad(["fp", "auth", "--model", MODEL, "--registry", P("none.json"), "--input", FP1], "none.json",
           "a missing registry")
expect_bad(["fp", "auth", "--model", P("other.safetensors"), "--registry", REG, "--input", FP1], "not the file",
           "fp auth with another model than the registry's")
expect_bad(["predict", "--model", P("other.safetensors"), "--net", "lenet5", "--data", MNIST, "--fingerprint", FP1,
            "--registry", REG], "not the file", "predict with another model than the registry's")
Image.fromarray(np.zeros((32, 32), np.uint8), "L").save(P("big.png"))
expect_bad(["fp", "auth", "--model", MODEL, "--registry", REG, "--input", P("big.png")], "32x32", "a 32x32 PNG")
Image.fromarray(np.stack([test_images[0]] * 3, -1), "RGB").save(P("rgb.png"))
expect_bad(["fp", "auth", "--model", MODEL, "--registry", REG, "--input", P("rgb.png")], "3 channels",
           "an RGB PNG")
expect_bad(["predict", *PRED[1:], "--fingerprint", P("rgb.png"), "--registry", REG], "3 channels",
           "predict with an RGB fingerprint")
expect_bad(["fp", "auth", "--model", MODEL, "--registry", REG, "--input", P("nothere.png")], "nothere.png",
           "a missing PNG")
with open(FP1, "rb") as fh:
    png = fh.read()
with open(P("cut.png"), "wb") as fh:
    fh.write(png[: len(png) - 20])
expect_bad(["fp", "auth", "--model", MODEL, "--registry", REG, "--input", P("cut.png")], "cut.png", "a truncated PNG")
expect_bad(["fp", "auth", "--model", MODEL, "--input", FP1], "--registry", "fp auth without --registry")
expect_bad([*PRED, "--fingerprint", FP1], "--registry", "predict --fingerprint without --registry")
expect_bad([*PRED, "--registry", REG], "--fingerprint", "predict --registry without --fingerprint")
expect_bad(["predict", "--model", MODEL, "--net", "lenet5", "--data", "fashion-mnist:" + os.path.join(SHARED, "nowhere"),
            "--fingerprint", FP1, "--registry", REG], "nowhere", "predict on a missing data set")
expect_bad(["predict", "--model", MODEL, "--net", "vgg16-cifar", "--data", MNIST, "--fingerprint", FP1, "--registry",
            REG], "not for this --net", "predict with another net than the registry's")
ISSUE_BAD = ["fp", "issue", "--model", MODEL, "--net", "lenet5", "--data", MNIST]
expect_bad([*ISSUE_BAD, "--classes", "0-2", "--conf", "0.3,0.31", "--out", P("never")], "overlap",
           "fp issue with overlapping confidence windows")
expect_bad([*ISSUE_BAD, "--classes", "0-2", "--conf", "0.5,0.3", "--out", P("never")], "increase",
           "fp issue with decreasing confidences")
expect_bad([*ISSUE_BAD, "--classes", "0-2", "--conf", "0.3,0.5", "--users", "7", "--out", P("never")], "--users 7",
           "--users 7 with 3 classes × 2 confidences")
expect_bad([*ISSUE_BAD, "--classes", "0-10", "--conf", "0.3", "--out", P("never")], "--classes",
           "a fingerprint class past the net's")
expect_bad([*ISSUE_BAD, "--classes", "0-2", "--conf", "0.3", "--margin", "0.02", "--out", P("never")], "margin",
           "a margin wider than eps")
expect_bad([*ISSUE_BAD, "--classes", "0-2", "--out", P("never")], "--conf", "fp issue without --conf")
expect_bad([*ISSUE_BAD, "--classes", "0-2", "--conf", "0.05,0.3", "--out", P("never")], "at least 1/10",
           "a confidence the predicted class never has (c + margin ≤ 1/K)")
expect_bad([*FORGE, "--method", "pgd"], "--method", "attack forge with an unknown method")
expect_bad(["fp", "eval", "--model", MODEL, "--registry", P("truncated.json")], "truncated.json",
           "fp eval with a truncated registry")
check(not os.path.exists(P("never")), "a refused fp issue leaves no output folder")
# a value given is used or refused, never replaced by the default; options of another method are refused
with open(P("plainfile"), "w") as f:
    f.write("x")
for args, mention, what in (([*ISSUE_BAD, "--classes", "0-2", "--conf", "0.3", "--iters", "0", "--out", P("never")],
                              "--iters", "fp issue --iters 0"),
                             ([*ISSUE_BAD, "--classes", "0-2", "--conf", "0.3", "--alpha", "-1", "--out", P("never")],
                              "--alpha", "fp issue --alpha -1"),
                             ([*ISSUE_BAD, "--classes", "0-2", "--conf", "0.3", "--margin", "-1", "--out", P("never")],
                              "margin", "fp issue --margin -1"),
                             ([*ISSUE_BAD, "--classes", "0-2", "--conf", "0.3", "--out", P("plainfile")],
                              "not a folder", "fp issue --out naming a file"),
                             ([*FORGE, "--method", "fgsm", "--fgsm-eps", "-0.5"], "--fgsm-eps", "forge --fgsm-eps -0.5"),
                             ([*FORGE, "--method", "clean", "--fgsm-eps", "0.3"], "--fgsm-eps", "--fgsm-eps with clean"),
                             ([*FORGE, "--method", "fgsm", "--iters", "5"], "--iters", "a C&W option with fgsm"),
                             ([*FORGE, "--method", "cw", "--conf-weight", "5"], "--conf-weight",
                              "forge --conf-weight (its untargeted C&W has no confidence term)"),
                             ([*FORGE, "--method", "cw", "--search-steps", "0"], "--search-steps", "forge --search-steps 0"),
                             ([*PRED, "--limit", "-3"], "--limit", "predict --limit -3"),
                             ([*PRED, "--out", P("no/such/dir/answers.txt")], "answers.txt",
                              "predict --out in a missing folder"),
                             (["fp", "eval", "--model", MODEL, "--registry", REG, "--table", P("no/such/dir/t.md")],
                              "t.md", "fp eval --table in a missing folder (before generating)")):
    expect_bad(args, mention, what)
check(not os.path.exists(P("never")), "the refused runs leave no output folder")
r = run(*PRED, "--limit", "5", "--out", "/dev/stdout")
check(r.returncode == 0 and len(r.stdout.splitlines()) == 6, f"predict --out /dev/stdout: 5 answers and the JSON {r.stdout[:80]!r}")
with open(P("pf.txt"), "w") as f:  # stdout a file: the answers must not be overwritten by the JSON
    rc = subprocess.run([DNNGUARD, *PRED, "--limit", "5", "--out", "/dev/stdout"], stdout=f).returncode
lines = open(P("pf.txt")).read().splitlines()
check(rc == 0 and len(lines) == 6 and lines[-1].startswith("{"), f"predict --out /dev/stdout into a file: {lines}")

shutil.rmtree(tmp, ignore_errors=True)
print(f"test_fp_cli: {time.time() - T0:.1f} s (fp issue {issue_s:.1f} s)")
done()
