"""tests/test_infip_cli.py — InFIP end to end on real MNIST with LeNet-5: `infip extract` (the folder
and its modes, key PNGs equal to the data set's images at the manifest's indices, each fingerprint
PNG equal to the image of the saved raw relevance, SHA-256s, repeatability), `infip verify` (the
owner's model: ASSIM exactly 1 in both SSIM forms; the same weights saved by PyTorch: 1 too; pirated
copies — fine-tuned, pruned, overwritten — above an independently trained model; the suspect's
fingerprints written with --out equal the owner's for the owner's model), `attack overwrite` (the
pirate's noise backdoor learned), and bad input: one line on stderr and exit 2 (a modified or
missing reference file, a corrupt manifest, a net whose weights do not fit, a reference of another
size, bad options)."""
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
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402
from cli_check import CIFAR, DNNGUARD, MNIST, SHARED, check, done, expect_bad, parse, run, sha256  # noqa: E402

T0 = time.time()
tmp = tempfile.mkdtemp(prefix="dg-infip-")
P = lambda name: os.path.join(tmp, name)
REF = P("ref")
N_KEYS = 60


def mnist_test_images():
    with gzip.open(os.path.join(SHARED, "mnist", "t10k-images-idx3-ubyte.gz")) as fh:
        return np.frombuffer(fh.read(), np.uint8, offset=16).reshape(-1, 28, 28)


def verify(model, *extra, reference=REF):
    r = run("infip", "verify", "--model", model, "--reference", reference, *extra)
    return r.returncode, parse(r.stdout), r.stderr.strip()


def train(out, seed):
    r = run("train", "--net", "lenet5", "--data", MNIST, "--epochs", "1", "--opt", "adam", "--lr", "1e-3",
            "--seed", str(seed), "--subset", "20000", "--eval-every", "0", "--out", out)
    check(r.returncode == 0, f"train {os.path.basename(out)} (exit {r.returncode}) {r.stderr.strip()[-200:]}")


def calibrate_checks(owner, indep, runs):
    """infip calibrate on a copy of the reference: the threshold is the next double above the highest
    independent ASSIM, verify then decides by it (and says so), and every way a calibration could
    mislead is refused."""
    cal_ref = P("cal-ref")
    shutil.copytree(REF, cal_ref)
    nulls = [P("indep3.safetensors"), P("indep4.safetensors")]
    train(nulls[0], 3)
    train(nulls[1], 4)
    r = run("infip", "calibrate", "--reference", cal_ref, "--independent", ",".join(nulls))
    c = parse(r.stdout)
    cal_path = os.path.join(cal_ref, "calibration.json")
    check(r.returncode == 0 and c.get("independent") == 2 and os.path.exists(cal_path),
          f"infip calibrate on 2 independent models: exit {r.returncode} {r.stderr.strip()[-300:]}")
    check("1/3" in r.stderr and "warning" in r.stderr,
          f"with 2 models it warns that the false-positive bound is 1/3 ({r.stderr.strip()})")
    cal = json.load(open(cal_path))
    check(stat.S_IMODE(os.stat(cal_path).st_mode) == 0o600 and cal["manifest_sha256"] == sha256(
        os.path.join(cal_ref, "manifest.json")) and cal["false_positive_bound"] == 1 / 3,
          "calibration.json: mode 0600, names the manifest by its SHA-256, bound 1/(n+1)")
    for mode in ("global", "gaussian"):
        assims = [z["assim_" + mode] for z in cal["independent"]]
        want = float(np.nextafter(max(assims) + 1e-4, 2.0))
        check(cal["thresholds"][mode] == want and c["thresholds"][mode] == want,
              f"{mode}: the threshold is the next double above the highest independent ASSIM + the default margin "
              f"1e-4 ({want!r})")
        for z, path in zip(cal["independent"], nulls):
            rc, v, err = verify(path, "--mode", mode, reference=cal_ref)
            other = "gaussian" if mode == "global" else "global"
            check(v.get("forms", {}).get(other, {}).get("keys_below_threshold") ==
                  verify(path, "--mode", other, reference=cal_ref)[1].get("keys_below_threshold"),
                  f"{mode}: the other form's keys_below_threshold counts against that form's own calibrated threshold")
            check(rc == 1 and v.get("verdict") == "not pirated" and v["assim"] == z["assim_" + mode] and
                  v.get("threshold") == want and v.get("threshold_source") == "calibrated (calibration.json)" and
                  v.get("calibration", {}).get("independent") == 2 and "chance up to 0.333" in err,
                  f"{mode}: a calibration model is below its own threshold, and verify says whose threshold "
                  f"decided ({rc}, {v.get('assim')}, {err})")
        verdicts = {}
        for name in ("owner", "ft", "pruned", "ow", "indep"):
            model = owner if name == "owner" else indep if name == "indep" else P(f"{name}.safetensors")
            rc, v, _ = verify(model, "--mode", mode, reference=cal_ref)
            a = runs[(name, mode)]["assim"] if name != "owner" else 1.0
            check(v.get("assim") == a and v.get("pirated") == (a >= want) and rc == (0 if a >= want else 1),
                  f"{mode}, {name}: the calibrated verdict is ASSIM >= threshold ({a} against {want})")
            verdicts[name] = v.get("verdict")
        print(f"calibrated on 2 models, {mode}: threshold {want:.6f}, verdicts {verdicts}")
    z = max(cal["independent"], key=lambda z: z["assim_global"])
    rc, v, _ = verify(nulls[cal["independent"].index(z)], "--threshold", repr(z["assim_global"]), reference=cal_ref)
    check(rc == 0 and v.get("threshold") == z["assim_global"] and v.get("assim") == z["assim_global"],
          "--threshold is read as a double: a model at exactly its ASSIM meets it (a float would round it)")
    rc, v, _ = verify(nulls[cal["independent"].index(z)], "--threshold",
                      repr(float(np.nextafter(z["assim_global"], 2.0))), reference=cal_ref)
    check(rc == 1, "and one double above its ASSIM does not")
    rc, v, err = verify(indep, "--threshold", "0.5", reference=cal_ref)
    check(v.get("threshold_source") == "--threshold" and v.get("threshold") == 0.5 and "calibration" not in v,
          "--threshold overrides the calibration")
    rc, v, err = verify(indep)
    check("not calibrated" in err and "infip calibrate" in err, "an uncalibrated default says so on stderr")

    resaved = P("resaved.safetensors")  # the owner's weights as another file: ASSIM 1, not independent
    shutil.copy(nulls[0], P("indep3-copy.safetensors"))
    mine = ["--reference", cal_ref, "--force"]
    for args, word, what in [
            (["--reference", cal_ref, "--independent", nulls[0]], "already calibrated",
             "a calibrated reference without --force"),
            (mine + ["--independent", f"{nulls[0]},{owner}"], "owner's model", "the owner's model as independent"),
            (mine + ["--independent", f"{nulls[0]},{P('indep3-copy.safetensors')}"], "one model",
             "one model listed twice (by SHA-256)"),
            (mine + ["--independent", f"{nulls[0]},{resaved}"], "reaches 1",
             "a model with the owner's fingerprints (ASSIM 1)"),
            (mine + ["--independent", f"{nulls[0]},{P('missing.safetensors')}"], "missing.safetensors",
             "a missing model (before any is scored)"),
            (mine + ["--independent", f"{nulls[0]},,{nulls[1]}"], "none empty", "an empty list item"),
            (mine + ["--independent", ",".join(nulls), "--nets", "lenet5,lenet5,lenet5"], "--nets",
             "three nets for two models"),
            (mine + ["--independent", nulls[0], "--margin", "1"], "--margin", "a margin of 1"),
            (mine + ["--independent", nulls[0], "--nets", "resnet18-cifar"], "indep3.safetensors",
             "a net the model's weights do not fit"),
            (["--reference", P("nowhere"), "--independent", nulls[0]], "manifest.json", "no reference")]:
        expect_bad(["infip", "calibrate", *args], word, what)
    check(json.load(open(cal_path)) == cal, "the refused runs left the calibration as it was")
    # one model under two files (other metadata): the same weights, refused by their digest
    t3, _ = st_io.read(nulls[0], with_metadata=True)
    st_io.write(P("indep3-resaved.safetensors"), t3, {"saved_by": "someone else"})
    expect_bad(["infip", "calibrate", *mine, "--independent", f"{nulls[0]},{P('indep3-resaved.safetensors')}"],
               "same weights", "one model saved twice with other metadata")
    # a FIFO anywhere a file is read is refused at once instead of blocking the open for ever
    os.mkfifo(P("fifo.safetensors"))
    for args, what in [(["infip", "calibrate", *mine, "--independent", f"{nulls[0]},{P('fifo.safetensors')}"],
                        "a FIFO as an independent model"),
                       (["infip", "verify", "--model", P("fifo.safetensors"), "--reference", cal_ref],
                        "a FIFO as the suspect")]:
        r = run(*args, timeout=60)
        check(r.returncode == 2 and "not a regular file" in r.stderr, f"{what}: exit 2, not a regular file")
    # a model that does not do the task is said (it lowers the threshold)
    zero = {k: np.zeros_like(v) for k, v in t3.items()}
    st_io.write(P("zero.safetensors"), zero)
    shutil.copytree(REF, P("zero-ref"))
    r = run("infip", "calibrate", "--reference", P("zero-ref"), "--independent", P("zero.safetensors"))
    zc = parse(r.stdout)
    check(r.returncode == 0 and "classifies" in r.stderr and zc["models"][0]["key_accuracy"] < 0.5,
          f"a calibration model far below the owner's key accuracy is warned of ({r.stderr.strip()[-200:]})")
    # paths that are not UTF-8 are written as valid JSON, with U+FFFD for such a byte (the SHA-256
    # identifies the model)
    odd, odd_ref = P("indep\udcff.safetensors"), P("ref\udcff")
    shutil.copy(nulls[1], odd)
    shutil.copytree(P("zero-ref"), odd_ref)
    r = subprocess.run([DNNGUARD, "infip", "calibrate", "--reference", os.fsencode(odd_ref), "--force",
                        "--independent", os.fsencode(odd)], capture_output=True)
    out = json.loads(r.stdout.decode("utf-8")) if r.returncode == 0 else {}
    check(r.returncode == 0 and "\ufffd" in out["reference"] and "\ufffd" in out["models"][0]["model"] and
          "\ufffd" in json.load(open(os.path.join(odd_ref, "calibration.json")))["independent"][0]["model"],
          "paths that are not UTF-8: stdout and calibration.json stay valid JSON")
    r = run("infip", "calibrate", *mine, "--independent", ",".join(nulls), "--nets", "lenet5", "--margin", "0.01")
    c2 = parse(r.stdout)
    check(r.returncode == 0 and c2["thresholds"]["global"] == float(np.nextafter(
        max(z["assim_global"] for z in cal["independent"]) + 0.01, 2.0)),
          f"--force --margin 0.01 replaces it: the threshold moves up by the margin ({r.stderr.strip()[-200:]})")
    run("infip", "calibrate", *mine, "--independent", ",".join(nulls))
    check(json.load(open(cal_path)) == cal, "the same calibration again writes the same file")

    ext = ["infip", "extract", "--model", owner, "--net", "lenet5", "--keys", MNIST, "--seed", "3", "--lambda", "5000",
           "--batch", "16", "--out", cal_ref, "--force"]
    r = run(*ext, "--n", str(N_KEYS))
    check(r.returncode == 0 and json.load(open(cal_path)) == cal and "removed" not in r.stderr,
          "extract --force of the same reference again (the same manifest) keeps its calibration")

    # a calibration that no longer holds is refused, never quietly replaced by 0.85
    other_net = dict(cal, independent=[dict(z, net="wrn-10-1") for z in cal["independent"]])
    with open(cal_path, "w") as fh:
        json.dump(other_net, fh)
    rc, v, err = verify(indep, reference=cal_ref)
    check(v.get("calibration", {}).get("suspect_net_calibrated") is False and "no model of the calibration" in err,
          f"a calibration of another architecture: verify says it does not speak of this suspect ({err})")
    with open(cal_path, "w") as fh:
        fh.write(json.dumps(cal)[:-1] + ', "margin": 0.5}')
    expect_bad(["infip", "verify", "--model", indep, "--reference", cal_ref], "\"margin\" twice",
               "a calibration naming a field twice (cJSON reads the first, Python the last)")
    with open(cal_path, "w") as fh:
        json.dump(dict(cal, independent=[dict(z, net="nonet") for z in cal["independent"]]), fh)
    expect_bad(["infip", "verify", "--model", indep, "--reference", cal_ref], "known net",
               "a calibration naming an unknown net")
    edited = dict(cal, thresholds=dict(cal["thresholds"], **{"global": 0.5}))
    with open(cal_path, "w") as fh:
        json.dump(edited, fh)
    expect_bad(["infip", "verify", "--model", indep, "--reference", cal_ref], "edited",
               "a calibration whose threshold was lowered by hand")
    shutil.copy(os.path.join(P("ref7"), "manifest.json"), os.path.join(cal_ref, "manifest.json"))
    shutil.copytree(os.path.join(P("ref7"), "fingerprints"), os.path.join(cal_ref, "fingerprints"),
                    dirs_exist_ok=True)
    with open(cal_path, "w") as fh:
        json.dump(cal, fh)
    expect_bad(["infip", "verify", "--model", indep, "--reference", cal_ref], "another reference",
               "a calibration beside another reference's manifest")
    with open(cal_path, "w") as fh:
        fh.write("{")
    expect_bad(["infip", "verify", "--model", indep, "--reference", cal_ref], "calibration.json",
               "a truncated calibration")
    shutil.copy(os.path.join(REF, "manifest.json"), os.path.join(cal_ref, "manifest.json"))
    with open(cal_path, "w") as fh:
        json.dump(cal, fh)
    r = run(*ext, "--n", "5")
    check(r.returncode == 0 and not os.path.exists(cal_path) and "removed" in r.stderr,
          f"extract --force of another reference removes the calibration it no longer has, and says so "
          f"({r.stderr.strip()[-200:]})")
    left = {d: sorted(os.listdir(os.path.join(cal_ref, d))) for d in ("keys", "fingerprints")}
    check(left == {"keys": [f"key-{i:05d}.png" for i in range(5)], "fingerprints": [f"fp-{i:05d}.png" for i in range(5)]}
          and "PNGs of keys past 4" in r.stderr,
          f"...and the PNGs of the keys past its 5 that the larger one left ({[len(v) for v in left.values()]} left; "
          f"{r.stderr.strip()[-200:]})")


def main():
    owner, indep = P("owner.safetensors"), P("indep.safetensors")
    train(owner, 1)
    train(indep, 2)

    # ---- extract ----
    r = run("infip", "extract", "--model", owner, "--net", "lenet5", "--keys", MNIST, "--n", str(N_KEYS),
            "--seed", "3", "--lambda", "5000", "--batch", "16", "--out", REF)
    out = parse(r.stdout)
    check(r.returncode == 0 and out.get("keys") == N_KEYS and out.get("batch") == 16,
          f"infip extract: exit {r.returncode}, {r.stdout.strip()[:300]} {r.stderr.strip()[-300:]}")
    man_path = os.path.join(REF, "manifest.json")
    check(stat.S_IMODE(os.stat(man_path).st_mode) == 0o600, "the manifest is mode 0600")
    check(stat.S_IMODE(os.stat(REF).st_mode) == 0o700, "the reference folder is mode 0700")
    man = json.load(open(man_path))
    check(man["format"] == "dnnguard-infip-1" and man["net"] == "lenet5" and man["shape"] == [1, 28, 28] and
          man["inject"] == "one" and man["lambda"] == 5000 and man["model_sha256"] == sha256(owner) and
          man.get("batch") == 16,
          "manifest header: format, net, shape, injection, lambda, the owner's SHA-256, the batch (verify's default)")
    keys = man["keys"]
    idx = [k["index"] for k in keys]
    check(len(keys) == N_KEYS and len(set(idx)) == N_KEYS and all(0 <= i < 10000 for i in idx),
          f"{N_KEYS} distinct keys from the test split")
    images = mnist_test_images()
    rel = st_io.read(os.path.join(REF, "relevance.safetensors"))
    R = rel["relevance"]
    check(R.shape == (N_KEYS, 1, 28, 28) and list(rel["index"]) == idx, "relevance.safetensors: [n, c, h, w], indices")
    key_ok = fp_ok = sha_ok = 0
    for i, k in enumerate(keys):
        kp, fp = os.path.join(REF, k["key"]), os.path.join(REF, k["fingerprint"])
        key_ok += np.array_equal(np.array(Image.open(kp)), images[k["index"]])
        want = np.clip(np.floor(5000.0 * R[i].astype(np.float64).sum(0) + 0.5), 0, 255).astype(np.uint8)
        fp_ok += np.array_equal(np.array(Image.open(fp)), want)
        sha_ok += sha256(kp) == k["key_sha256"] and sha256(fp) == k["fingerprint_sha256"]
    check(key_ok == N_KEYS, f"key PNGs are the data set's images at the manifest's indices ({key_ok}/{N_KEYS})")
    check(fp_ok == N_KEYS, f"fingerprint PNGs are clip(round(lambda * sum_c R)) of the saved relevance ({fp_ok})")
    check(sha_ok == N_KEYS, "the manifest's SHA-256s are the files'")
    sums = np.array([k["relevance_sum"] for k in keys])
    check(np.all(np.abs(sums - R.reshape(N_KEYS, -1).astype(np.float64).sum(1)) < 1e-4) and np.all(sums > 0.9) and
          np.all(sums <= 1.0 + 1e-4), f"relevance sums: at most the injected 1 (biases absorb a little): {sums.min():.4f}")
    r2 = run("infip", "extract", "--model", owner, "--net", "lenet5", "--keys", MNIST, "--n", str(N_KEYS),
             "--seed", "3", "--lambda", "5000", "--batch", "16", "--out", P("ref2"))
    man2 = json.load(open(os.path.join(P("ref2"), "manifest.json"))) if r2.returncode == 0 else {}
    check(man2.get("keys") == keys, "the same command again writes the same keys and fingerprints, bit for bit")
    # another batch size: the same keys; GEMMs of other shapes round differently in the last bits,
    # so a pixel may land on the other side of a rounding step, by one level at the most
    r2 = run("infip", "extract", "--model", owner, "--net", "lenet5", "--keys", MNIST, "--n", str(N_KEYS),
             "--seed", "3", "--lambda", "5000", "--batch", "7", "--out", P("ref7"))
    man7 = json.load(open(os.path.join(P("ref7"), "manifest.json"))) if r2.returncode == 0 else {"keys": []}
    diff = [np.abs(np.array(Image.open(os.path.join(P("ref7"), a["fingerprint"])), dtype=int) -
                   np.array(Image.open(os.path.join(REF, b["fingerprint"])), dtype=int))
            for a, b in zip(man7["keys"], keys)]
    check([k["index"] for k in man7["keys"]] == idx and max(d.max() for d in diff) <= 1 and
          sum((d > 0).sum() for d in diff) <= N_KEYS * 28 * 28 // 1000,
          f"--batch 7 instead of 16: same keys, fingerprints within one level in ≤ 0.1% of the pixels "
          f"({sum((d > 0).sum() for d in diff)} pixels differ)")
    r3 = run("infip", "extract", "--model", owner, "--net", "lenet5", "--keys", MNIST, "--n", "5", "--seed", "4",
             "--inject", "logit", "--out", P("ref3") + "//")
    man3 = json.load(open(os.path.join(P("ref3"), "manifest.json"))) if r3.returncode == 0 else {"keys": []}
    check(r3.returncode == 0 and man3["inject"] == "logit" and [k["index"] for k in man3["keys"]] != idx[:5],
          "another seed draws other keys; --inject logit is recorded")
    check(parse(r3.stdout).get("reference") == P("ref3"), f"--out DIR// is DIR ({r3.stdout[:80]})")
    r4 = run("infip", "extract", "--model", owner, "--net", "lenet5", "--keys", MNIST, "--n", "5", "--lambda", "1e-6",
             "--out", P("ref-black"))
    check(r4.returncode == 0 and "100.0% of the fingerprint pixels are black" in r4.stderr,
          f"a lambda that leaves every fingerprint black is warned of ({r4.stderr.strip()[-200:]})")
    expect_bad(["infip", "verify", "--model", indep, "--reference", P("ref-black")], "cannot tell one model",
               "verify of an all-black reference (every model would score ASSIM 1)")
    expect_bad(["infip", "calibrate", "--reference", P("ref-black"), "--independent", indep], "cannot tell one model",
               "calibrate of an all-black reference")
    r4 = run("infip", "extract", "--model", owner, "--net", "lenet5", "--keys", MNIST, "--n", "5", "--out", P("ref-ok"))
    check(r4.returncode == 0 and not r4.stderr.strip(), "lambda 5000 on MNIST: no warning")

    # ---- verify ----
    for mode in ("global", "gaussian"):
        rc, v, err = verify(owner, "--mode", mode)
        check(rc == 0 and v.get("assim") == 1.0 and v.get("ssim_min") == 1.0 and v.get("same_file") is True and
              v.get("verdict") == "pirated" and v.get("prediction_agreement") == 1.0,
              f"the owner's own model, {mode}: ASSIM exactly 1, exit 0 ({rc}, {err})")
    # the same weights written by PyTorch's side (another file): the same fingerprints
    tensors, meta = st_io.read(owner, with_metadata=True)
    st_io.write(P("resaved.safetensors"), tensors, {"saved_by": "st_io"})
    rc, v, _ = verify(P("resaved.safetensors"), "--out", P("suspect-fps"))
    check(rc == 0 and v.get("assim") == 1.0 and v.get("same_file") is False,
          f"the same weights saved by another writer: ASSIM 1, same_file false ({v.get('assim')})")
    same_png = sum(np.array_equal(np.array(Image.open(os.path.join(P("suspect-fps"), f"fp-{i:05d}.png"))),
                                  np.array(Image.open(os.path.join(REF, keys[i]["fingerprint"]))))
                   for i in range(N_KEYS))
    check(same_png == N_KEYS, f"--out writes the suspect's fingerprints: equal to the owner's here ({same_png})")
    # --out never writes into the reference, nor over earlier fingerprints without --force
    owner_fps = {f: open(os.path.join(REF, "fingerprints", f), "rb").read()
                 for f in os.listdir(os.path.join(REF, "fingerprints"))}
    indep_path = P("verify-out-other.safetensors")
    w = {k: (v + np.float32(0.05)).astype(np.float32) for k, v in tensors.items()}  # other weights, other PNGs
    st_io.write(indep_path, w, meta)
    for where in (REF, os.path.join(REF, "fingerprints"), os.path.join(REF, "fingerprints", "."),
                  os.path.join(REF, "keys"), os.path.join(REF, "keys", "new"), REF + "/"):
        rc, v, err = verify(indep_path, "--out", where, "--force")
        check(rc == 2 and not v and err.count("\n") == 0 and "reference's own folder" in err,
              f"verify --out {os.path.relpath(where, REF)!r} inside the reference is refused, --force or not ({rc}, {err})")
    rc, v, err = verify(indep_path, "--out", REF + "-beside")  # a name that starts like the reference's
    check(rc in (0, 1) and v and len(os.listdir(REF + "-beside")) == v.get("keys"),
          f"verify --out beside the reference (its name a prefix) is a folder of its own ({rc}, {err})")
    rc, v, err = verify(indep_path, "--out", P("suspect-fps"))
    check(rc == 2 and "already holds fingerprints" in err and "--force" in err,
          f"verify --out over earlier fingerprints is refused without --force ({rc}, {err})")
    # a larger earlier run's fingerprints past this reference's keys go; other files stay
    past = os.path.join(P("suspect-fps"), f"fp-{N_KEYS + 3:05d}.png")
    shutil.copy(os.path.join(P("suspect-fps"), "fp-00000.png"), past)
    open(os.path.join(P("suspect-fps"), "fp-notes.png"), "wb").close()
    rc, v, err = verify(indep_path, "--out", P("suspect-fps"), "--force")
    check(not os.path.exists(past) and os.path.exists(os.path.join(P("suspect-fps"), "fp-notes.png")) and
          f"removed 1 fingerprint of keys past {N_KEYS - 1}" in err,
          f"verify --force removes the fingerprints past its keys an earlier run left, and says so ({err[-300:]})")
    replaced = not np.array_equal(np.array(Image.open(os.path.join(P("suspect-fps"), "fp-00000.png"))),
                                  np.array(Image.open(os.path.join(REF, keys[0]["fingerprint"]))))
    check(rc in (0, 1) and v and replaced, f"... and with --force it replaces them ({rc}, {err[-200:]})")
    check(all(open(os.path.join(REF, "fingerprints", f), "rb").read() == b for f, b in owner_fps.items()),
          "the owner's fingerprints are untouched after all of it")

    # pirated copies and an independent model
    r = run("attack", "finetune", "--model", owner, "--net", "lenet5", "--data", MNIST, "--split", "test",
            "--subset", "1000", "--epochs", "3", "--opt", "adam", "--lr", "1e-3", "--eval-every", "0",
            "--out", P("ft.safetensors"))
    check(r.returncode == 0, f"attack finetune ({r.stderr.strip()[-200:]})")
    r = run("attack", "prune", "--model", owner, "--rate", "0.3", "--out", P("pruned.safetensors"))
    check(r.returncode == 0, "attack prune 0.3")
    r = run("attack", "overwrite", "--model", owner, "--net", "lenet5", "--data", MNIST, "--subset", "500",
            "--keys", "100", "--epochs", "5", "--opt", "adam", "--lr", "2e-3", "--eval-every", "0",
            "--out", P("ow.safetensors"))
    ow = parse(r.stdout)
    check(r.returncode == 0 and ow.get("wm_accuracy", 0) >= 0.9 and ow.get("wm_accuracy_before", 1) <= 0.1 and
          ow.get("wm_accuracy_fresh", 0) >= 0.8 and ow.get("test_acc", 0) > 0.8 and
          ow.get("finetune_images") == 500 and ow.get("trained_images") == 600,
          f"attack overwrite: the pirate's backdoor learned ({r.stdout.strip()[:400]} {r.stderr.strip()[-200:]})")
    summary, other, runs = {}, {}, {}
    for mode in ("global", "gaussian"):
        got = {}
        for name in ("ft", "pruned", "ow", "indep"):
            model = P(f"{name}.safetensors") if name != "indep" else indep
            rc, v, err = verify(model, "--mode", mode, "--threshold", "0.5")
            check(rc in (0, 1) and "assim" in v, f"verify {name} {mode}: exit {rc} {err}")
            got[name] = v.get("assim", float("nan"))
            runs[(name, mode)] = v
            other[(name, "gaussian" if mode == "global" else "global")] = v.get(
                "assim_gaussian" if mode == "global" else "assim_global")
        summary[mode] = got
        pirated = min(got["ft"], got["pruned"], got["ow"])
        check(pirated > got["indep"] + 0.02 and pirated < 1.0,
              f"{mode}: pirated copies ({pirated:.4f} at the least) above the independent model ({got['indep']:.4f})")
    print("ASSIM:", json.dumps(summary))
    check(all(other[(name, mode)] == summary[mode][name] for (name, mode) in other),
          "verify reports the other SSIM form's ASSIM too, equal to a run in that form")
    spread = ("assim", "ssim_min", "ssim_median", "ssim_max", "ssim_std", "keys_below_threshold")
    check(all(runs[(name, m)].get("forms", {}).get(f) == {k: runs[(name, f)][k] for k in spread}
              for (name, m) in runs for f in ("global", "gaussian")),
          "verify's 'forms' gives both forms' ASSIM and spread, each equal to a run in that form")
    rc, v, _ = verify(indep, "--threshold", "0.999")
    check(rc == 1 and v.get("verdict") == "not pirated" and v.get("pirated") is False,
          "a verdict below the threshold: exit 1, 'not pirated'")
    rc, v, _ = verify(owner, "--per-key")
    check(rc == 0 and len(v.get("per_key", [])) == N_KEYS and all(k["ssim"] == 1.0 for k in v["per_key"]),
          "--per-key lists every key")
    _, v2, _ = verify(owner, "--threshold", "0.9")
    check(v.get("threshold_source") == "the paper's default, not calibrated" and v2.get("threshold_source") ==
          "--threshold", f"the JSON says whose threshold decided ({v.get('threshold_source')}, {v2.get('threshold_source')})")

    calibrate_checks(owner, indep, runs)

    # ---- bad input ----
    expect_bad(["infip", "verify", "--model", owner, "--reference", P("nowhere")], "manifest.json",
               "a reference folder without a manifest")
    shutil.copytree(REF, P("tampered"))
    fp0 = os.path.join(P("tampered"), keys[0]["fingerprint"])
    img = np.array(Image.open(fp0))
    img[0, 0] ^= 1
    Image.fromarray(img).save(fp0)
    expect_bad(["infip", "verify", "--model", owner, "--reference", P("tampered")], "modified",
               "a fingerprint PNG changed after extraction")
    shutil.copytree(REF, P("badpng"))  # a corrupt PNG whose hash the manifest was edited to match
    bad = os.path.join(P("badpng"), keys[1]["key"])
    data = bytearray(open(bad, "rb").read())
    data[60] ^= 0x55
    open(bad, "wb").write(bytes(data))
    man_b = json.load(open(os.path.join(P("badpng"), "manifest.json")))
    man_b["keys"][1]["key_sha256"] = sha256(bad)
    with open(os.path.join(P("badpng"), "manifest.json"), "w") as fh:
        json.dump(man_b, fh)
    expect_bad(["infip", "verify", "--model", owner, "--reference", P("badpng")], "key-00001.png",
               "a corrupt key PNG (its hash matching the manifest)")
    shutil.copytree(REF, P("corrupt"))
    with open(os.path.join(P("corrupt"), "manifest.json"), "w") as fh:
        fh.write(json.dumps(man)[:-40])
    expect_bad(["infip", "verify", "--model", owner, "--reference", P("corrupt")], "manifest.json",
               "a truncated manifest")
    for bad_batch in (0, "16", 16.5):  # the optional batch: a whole number of keys, at least 1
        where = P(f"badbatch-{bad_batch}")
        shutil.copytree(REF, where)
        with open(os.path.join(where, "manifest.json"), "w") as fh:
            json.dump(dict(man, batch=bad_batch), fh)
        expect_bad(["infip", "verify", "--model", owner, "--reference", where], "\"batch\"",
                   f"a manifest whose batch is {bad_batch!r}")
    shutil.copytree(REF, P("resized"))
    man_r = dict(man, shape=[1, 32, 32])
    with open(os.path.join(P("resized"), "manifest.json"), "w") as fh:
        json.dump(man_r, fh)
    expect_bad(["infip", "verify", "--model", owner, "--reference", P("resized")], "32x32",
               "a reference whose images are not the manifest's size")
    expect_bad(["infip", "verify", "--model", owner, "--net", "resnet18-cifar", "--reference", REF], "owner.safetensors",
               "a net whose weights do not fit")
    cifar_ref = P("cifar-ref")
    vgg = P("vgg.safetensors")
    r = run("train", "--net", "vgg16-cifar", "--data", "synthetic:3,32,32,10,8", "--epochs", "1", "--batch", "8",
            "--out", vgg)
    check(r.returncode == 0, "a vgg16-cifar model for the size check")
    r = run("infip", "extract", "--model", vgg, "--net", "vgg16-cifar", "--keys", CIFAR, "--n", "2", "--out", cifar_ref)
    check(r.returncode == 0, f"a CIFAR-10 reference ({r.stderr.strip()[-200:]})")
    expect_bad(["infip", "verify", "--model", owner, "--net", "lenet5", "--reference", cifar_ref, "--out", P("vleft")],
               "owner.safetensors", "a 28x28 grey model against a 32x32 colour reference")
    check(not os.path.exists(P("vleft")), "the refused verify leaves no --out folder behind")
    for args, word, what in [
            (["--model", owner, "--reference", REF, "--mode", "box"], "--mode", "unknown SSIM mode"),
            (["--model", owner, "--reference", REF, "--threshold", "2"], "--threshold", "threshold outside [-1, 1]"),
            (["--reference", REF], "--model", "no model"),
            (["--model", owner, "--reference", REF, "--out", P("no/such/dir")], "no/such/dir",
             "an --out folder that cannot be made (said before the relevance)")]:
        expect_bad(["infip", "verify", *args], word, what)
    with open(P("plainfile"), "w") as f:
        f.write("x")
    base = ["infip", "extract", "--model", owner, "--net", "lenet5", "--keys", MNIST]
    for args, word, what in [
            (["--n", "10", "--out", REF], "already", "an existing reference without --force"),
            (["--n", "10001", "--out", P("x1")], "10001", "more keys than the split holds"),
            (["--n", "0", "--out", P("x2")], "--n", "no keys"),
            (["--n", "5", "--lambda", "0", "--out", P("x3")], "--lambda", "lambda 0"),
            (["--n", "5", "--inject", "grad", "--out", P("x4")], "--inject", "unknown injection"),
            (["--n", "5", "--split", "val", "--out", P("x5")], "--split", "unknown split"),
            (["--n", "5"], "--out", "no --out"),
            (["--n", "5", "--out", P("plainfile")], "not a folder", "an --out that is a file")]:
        expect_bad(base + args, word, what)
    r = run("infip", "extract", "--model", owner, "--net", "lenet5", "--keys", MNIST, "--n", "5", "--out", REF,
            "--force")
    check(r.returncode == 0 and len(json.load(open(man_path))["keys"]) == 5, "--force replaces a reference")
    os.mkfifo(P("fifo.png"))
    r = run("ssim", P("fifo.png"), P("rgba.png"), timeout=60)
    check(r.returncode == 2 and "not a regular file" in r.stderr, "a FIFO as a PNG: exit 2 at once, not a hang")
    Image.fromarray(np.zeros((28, 28, 4), np.uint8), "RGBA").save(P("rgba.png"))
    Image.fromarray(np.zeros((28, 28), np.uint8), "L").save(P("grey.png"))
    expect_bad(["ssim", P("rgba.png"), P("grey.png")], "stored as RGBA: read as RGB, alpha dropped",
               "an RGBA image beside a grey one: the message says what the file held")
    expect_bad(["infip", "nothing"], "extract, verify or calibrate", "an unknown infip command")
    print(f"test_infip_cli: {time.time() - T0:.0f} s")
    shutil.rmtree(tmp, ignore_errors=True)
    done()


if __name__ == "__main__":
    main()
