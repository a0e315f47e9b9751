"""tests/test_reproduce_calibration.py — scripts/reproduce/infip-calibration.sh at smoke size on real
MNIST: it runs to the end, and its report agrees with the commands it ran (the threshold is
calibrate's, the counts are verify's verdicts, the held-out and calibration models are distinct)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_check import DNNGUARD, MNIST, check, done  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "reproduce",
                      "infip-calibration.sh")
tmp = tempfile.mkdtemp(prefix="dg-repro-cal-")
out = os.path.join(tmp, "out")
r = subprocess.run(["bash", SCRIPT, "--data", MNIST, "--calibrate", "3", "--held-out", "2", "--epochs", "1",
                    "--train-subset", "2000", "--keys", "20", "--out", out],
                   capture_output=True, text=True, env=dict(os.environ, DNNGUARD=os.path.abspath(DNNGUARD)),
                   timeout=600)
check(r.returncode == 0 and os.path.exists(os.path.join(out, "results.md")),
      f"infip-calibration.sh at smoke size runs to the end (exit {r.returncode}) {r.stderr.strip()[-300:]}")
if r.returncode == 0:
    res = json.load(open(os.path.join(out, "results.json")))
    cal = json.load(open(os.path.join(out, "ref", "calibration.json")))
    runs = [json.loads(line) for line in open(os.path.join(out, "logs", "verify.jsonl"))]
    names = {z["model"] for z in cal["independent"]}
    held = {r["name"] for r in runs if r["role"] == "independent"}
    check(len(cal["independent"]) == 3 and len(held) == 2 and not any(h in n for n in names for h in held),
          "3 models calibrate, 2 other ones are held out")
    for mode in ("global", "gaussian"):
        f = res["forms"][mode]
        verdicts = [r["verify"]["pirated"] for r in runs if r["role"] == "independent" and r["verify"]["mode"] == mode]
        check(f["threshold"] == cal["thresholds"][mode] and f["held_out_false_positives"] == sum(verdicts) and
              f["calibration_assim"] == [z["assim_" + mode] for z in cal["independent"]],
              f"{mode}: the report's threshold is the calibration's and its counts are verify's verdicts")
    check(res["false_positive_bound"] == 0.25, "the stated bound is 1/(3 + 1)")
r = subprocess.run(["bash", SCRIPT, "--out", ""], capture_output=True, text=True)
check(r.returncode == 2 and "--out" in r.stderr, "an empty --out is refused")
shutil.rmtree(tmp, ignore_errors=True)
done()
