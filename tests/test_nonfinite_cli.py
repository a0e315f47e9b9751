"""tests/test_nonfinite_cli.py — models with NaN or infinite weights, as a suspect may hand them
over, through every command that reads a model: what is printed is strict JSON (a value JSON
cannot hold is null, never nan or inf), the verifiers answer (a spoiled watermark layer is not
verified, a destroyed model is not pirated, an intact copy with one NaN elsewhere still is), and
the commands that make an owner's secret or reference from a model (wm keygen, fp issue, infip
extract) refuse it with one line and exit 2. Touches only a temp dir."""
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_check import MNIST, check, done, expect_bad, run  # noqa: E402
import numpy as np  # noqa: E402
import st_io  # noqa: E402

tmp = tempfile.mkdtemp(prefix="dg-nonfinite-")
P = lambda name: os.path.join(tmp, name)


def strict(text):
    """the JSON lines of text, refusing NaN and Infinity as JSON does; None when one is not JSON"""
    def no(c):
        raise ValueError(c)
    try:
        return [json.loads(l, parse_constant=no) for l in text.splitlines() if l.strip()]
    except ValueError:
        return None


r = run("train", "--net", "lenet5", "--data", MNIST, "--subset", "2000", "--epochs", "2", "--seed", "3",
        "--eval-every", "0", "--out", P("m.safetensors"))
check(r.returncode == 0, f"train LeNet-5 (exit {r.returncode})")
r = run("wm", "keygen", "--model", P("m.safetensors"), "--net", "lenet5", "--layer", "conv2.weight", "--digits",
        "1234567890", "--seed", "7", "--out", P("key.json"))
check(r.returncode == 0, f"a key from the clean model {r.stderr.strip()}")
key = json.load(open(P("key.json")))
clean = st_io.read(P("m.safetensors"))
w = np.array(clean["conv2.weight"], copy=True).reshape(key["shape"][0], -1)
for d, pos in zip(key["digits"], key["positions"]):  # the watermark planted exactly: map(w) = digit
    w[key["filter"], pos] = (int(d) - key["b"]) / key["a"]
clean["conv2.weight"] = w.reshape(key["shape"]).astype(np.float32)
st_io.write(P("wm.safetensors"), clean)
r = run("wm", "verify", "--model", P("wm.safetensors"), "--key", P("key.json"))
check(r.returncode == 0, "the planted watermark verifies")
spoiled = {}
for name, edit in (("fc3-nan", lambda t: t["fc3.weight"].__setitem__((0, 0), np.nan)),
                   ("conv2-nan", lambda t: t["conv2.weight"].__setitem__(Ellipsis, np.nan)),
                   ("conv1-inf", lambda t: t["conv1.weight"].__setitem__(Ellipsis, np.inf)),
                   # finite weights whose activations overflow float32: they pass the weight check
                   ("fc1-huge", lambda t: t["fc1.weight"].__setitem__(Ellipsis, 3e38))):
    t = {k: np.array(v, copy=True) for k, v in clean.items()}
    edit(t)
    st_io.write(P(name + ".safetensors"), t)
    spoiled[name] = P(name + ".safetensors")

r = run("infip", "extract", "--model", P("wm.safetensors"), "--net", "lenet5", "--keys", MNIST, "--n", "20", "--seed",
        "3", "--out", P("ref"))
check(r.returncode == 0, f"an InFIP reference from the clean model {r.stderr.strip()}")

for name, path in spoiled.items():
    r = run("eval", "--net", "lenet5", "--model", path, "--data", MNIST, "--limit", "500")
    out = strict(r.stdout)
    check(r.returncode == 0 and out and "loss" in out[0], f"{name}: eval prints strict JSON (loss {out and out[0].get('loss')})")
    # every output is NaN here (one NaN weight of fc3 reaches every softmax): no image is given a
    # class (an argmax of NaN would pick class 0 and score its 10%), and the user is told in one line
    ev = out[0] if out else {}
    warned = [l for l in r.stderr.splitlines() if "not a working model" in l]
    # (fc1-huge: the images whose fc1 sums stay finite keep a class)
    all_nan = name != "fc1-huge"
    check((ev.get("nonfinite_outputs") == 500 and ev.get("accuracy") == 0 if all_nan else
           0 < ev.get("nonfinite_outputs", 0) < 500 and ev.get("accuracy", 1) <= 1 - ev["nonfinite_outputs"] / 500)
          and len(warned) == 1,
          f"{name}: eval counts 500 non-finite outputs as wrong, accuracy 0, one warning line "
          f"({ev.get('nonfinite_outputs')}, {ev.get('accuracy')}, {warned})")
    r = run("predict", "--net", "lenet5", "--model", path, "--data", MNIST, "--limit", "50", "--out", P("ans.txt"))
    out = strict(r.stdout)
    answers = open(P("ans.txt")).read().split() if r.returncode == 0 else []
    # (no fingerprint: the answers given are the random ones; the model's own are -1)
    check(r.returncode == 0 and out and 0 < out[0].get("nonfinite_outputs", 0) <= 50 and (not all_nan or (out[0].get("nonfinite_outputs") == 50 and out[0].get("accuracy_authorized") == 0
                          and len(answers) == 50 and "-1" not in answers and "not a working model" in r.stderr)),
          f"{name}: predict counts the model's 50 non-finite answers wrong {r.stdout.strip()[-160:]}")
    r = run("grad", "--net", "lenet5", "--model", path, "--data", MNIST, "--batch", "4", "--out", P("g.safetensors"))
    check(r.returncode == 0 and strict(r.stdout), f"{name}: grad prints strict JSON")
    r = run("attack", "prune", "--model", path, "--rate", "0.5", "--out", P("p.safetensors"))
    check(r.returncode == 0 and strict(r.stdout), f"{name}: attack prune prints strict JSON")
    r = run("wm", "verify", "--model", path, "--key", P("key.json"))
    out = strict(r.stdout)
    verified = bool(out and out[0].get("verified"))
    want = name != "conv2-nan"  # the key's layer is intact in the other two
    check(out is not None and r.returncode == (0 if want else 1) and verified == want,
          f"{name}: wm verify says verified={verified} (exit {r.returncode}), strict JSON")
    if name == "conv2-nan":
        check(out and all(d == -1 for d in out[0]["extracted"]) and all(x is None for x in out[0]["residual"]),
              "conv2-nan: no digit extracted (-1), residuals null")
    r = run("infip", "verify", "--model", path, "--net", "lenet5", "--reference", P("ref"))
    out = strict(r.stdout)
    pirated = bool(out and out[0].get("pirated"))
    check(out is not None and r.returncode in (0, 1) and pirated == (r.returncode == 0),
          f"{name}: infip verify answers in strict JSON (pirated {pirated}, ASSIM {out and out[0].get('assim')})")
    if name == "conv1-inf":
        check(not pirated, "conv1-inf: a model whose first layer is infinite is not called pirated")
    if name in ("conv1-inf", "fc1-huge"):
        # fc1-huge: a key whose fc1 sums stay finite has finite logits and a finite map (PyTorch's
        # oracle agrees: all its relevance is lost, 0), so not every key need count
        nonfinite = out and out[0].get("keys_nonfinite")
        check(out and out[0].get("keys") == 20 and (nonfinite == 20 if name == "conv1-inf" else 10 <= nonfinite <= 20),
              f"{name}: infip verify counts the keys whose relevance is not finite ({nonfinite})")
        fps = P(f"fps-{name}")
        r = run("infip", "verify", "--model", path, "--net", "lenet5", "--reference", P("ref"), "--out", fps)
        from PIL import Image
        lit = [f for f in sorted(os.listdir(fps)) if np.array(Image.open(os.path.join(fps, f))).any()]
        check(r.returncode in (0, 1) and len(os.listdir(fps)) == 20 and not lit,
              f"{name}: a map that is not finite is drawn black, the whole of it ({len(lit)} of 20 have lit pixels)")
    if name in ("fc3-nan", "conv2-nan"):
        # a NaN weight can leave the map finite (max(W, 0) of NaN is 0), but every output is NaN:
        # no key is a fingerprint of a working model, each predicts no class, and the verdict says so
        r = run("infip", "verify", "--model", path, "--net", "lenet5", "--reference", P("ref"), "--per-key")
        per = strict(r.stdout)
        keys = per and per[0].get("per_key") or []
        check(per and per[0].get("keys_nonfinite") == 20 and len(keys) == 20
              and all(k.get("predicted") == -1 for k in keys) and per[0].get("pirated") is False,
              f"{name}: infip verify counts the 20 keys whose outputs are NaN, predicted -1, not pirated "
              f"({per and per[0].get('keys_nonfinite')})")
    # an independent model for a calibration must work: weights that are not finite, or activations
    # that overflow, are refused (a NaN ASSIM would poison the threshold, a black map deflate it)
    expect_bad(["infip", "calibrate", "--reference", P("ref"), "--independent", path],
               "not finite" if name == "fc1-huge" else "is NaN" if "nan" in name else "is infinite",
               f"{name}: infip calibrate refuses the model")
    # wm keygen refuses the model whichever layer is spoiled (fc3-nan: not the key's conv2), with
    # --net and without (then only the file is known)
    first = {"fc3-nan": "fc3.weight[0] is NaN", "conv2-nan": "conv2.weight[0] is NaN",
             "conv1-inf": "conv1.weight[0] is infinite"}.get(name)
    for with_net in (["--net", "lenet5"], []):
        keygen = ["wm", "keygen", "--model", path, *with_net, "--layer", "conv2.weight", "--digits", "12345",
                  "--seed", "7", "--out", P("k2.json")]
        if first:
            expect_bad(keygen, first, f"{name}: wm keygen {' '.join(with_net)}")
        else:  # finite weights: a key can be made (whether the model works is fp issue's question)
            r = run(*keygen, "--force")
            check(r.returncode == 0, f"{name}: wm keygen of finite weights {r.stderr.strip()}")
            os.remove(P("k2.json"))
    expect_bad(["infip", "extract", "--model", path, "--net", "lenet5", "--keys", MNIST, "--n", "5", "--seed", "3",
                "--out", P("ref2")], "needs a working model", f"{name}: infip extract")
    if name == "fc1-huge":  # refused only after the forward pass, which says what overflowed
        expect_bad(["infip", "extract", "--model", path, "--net", "lenet5", "--keys", MNIST, "--n", "5", "--seed", "3",
                    "--out", P("ref2")], "overflow float32", f"{name}: infip extract names the overflow")
    if name != "fc1-huge":  # NaN weights, not a NaN loss that would blame --lr
        expect_bad(["train", "--net", "lenet5", "--data", MNIST, "--subset", "256", "--epochs", "1", "--init", path,
                    "--out", P("t2.safetensors")], "needs a working model", f"{name}: train --init")
    expect_bad(["fp", "issue", "--model", path, "--net", "lenet5", "--data", MNIST, "--classes", "0-9", "--conf", "0.3",
                "--eps", "0.01", "--users", "2", "--out", P("fps")], "needs a working model", f"{name}: fp issue")
check(not os.path.exists(P("k2.json")) and not os.path.exists(P("ref2")) and not os.path.exists(P("fps/registry.json")),
      "nothing written by the refused commands")

shutil.rmtree(tmp, ignore_errors=True)
done()
