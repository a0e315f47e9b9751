"""tests/test_cw_search.py — the binary search on α of fp issue's C&W generator: a search step's
verdict (did an 8-bit image meet the target at this α?) must be that of a one-step search at the
same α. Each step restarts δ and Adam, and with one user per run no other item shares the early
abort, so the two runs follow the same trajectory. A step that met the target at a smaller α with
a larger distortion than an earlier α's best was once counted a failure, and α went up (C&W's
reference resets the step's best score every step). The steps' verdicts come from DG_CW_DEBUG's
per-step lines (host/cw.h)."""
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_check import DNNGUARD, MNIST, check, done, run  # noqa: E402

T0 = time.time()
tmp = tempfile.mkdtemp(prefix="dg-cw-search-")
P = lambda name: os.path.join(tmp, name)
MODEL = P("m.safetensors")
r = run("train", "--net", "lenet5", "--data", MNIST, "--epochs", "2", "--opt", "adam", "--lr", "1e-3", "--seed", "1",
        "--eval-every", "0", "--out", MODEL)
check(r.returncode == 0, f"train a LeNet-5 (exit {r.returncode}) {r.stderr.strip()[-200:]}")
STEP = re.compile(r"^step (\d+) item 0 alpha ([0-9.]+) met ([01]) ")


def steps(cls, *extra):
    """[(alpha, met)] per search step of one user (class cls, confidence 0.3)"""
    out = P(f"fp-{cls}-{len(extra)}")
    r = subprocess.run([DNNGUARD, "fp", "issue", "--model", MODEL, "--net", "lenet5", "--data", MNIST, "--classes",
                        str(cls), "--conf", "0.3", "--retries", "0", "--seed", "1", "--out", out, "--force", *extra],
                       capture_output=True, text=True, env=dict(os.environ, DG_CW_DEBUG="1"), timeout=600)
    return [(m.group(2), int(m.group(3))) for m in map(STEP.match, r.stderr.splitlines()) if m]


disagree, compared, searched = [], 0, []
for cls in range(10):
    search = steps(cls, "--search-steps", "3")
    searched.append(len(search))
    for step, (alpha, met) in enumerate(search):
        if step == 0:
            continue  # the first step is the one-step search at --alpha's default
        alone = steps(cls, "--search-steps", "1", "--alpha", alpha)
        compared += 1
        if not alone or alone[0] != (alpha, met):
            disagree.append(f"class {cls} step {step} at α {alpha}: met {met}, alone {alone}")
    # success lowers α, failure raises it: the next step's α is below a met step's, above a failed one's
    for (a, met), (b, _) in zip(search, search[1:]):
        if (float(b) < float(a)) != bool(met):
            disagree.append(f"class {cls}: α {a} (met {met}) then {b}")
check(searched == [3] * 10, f"every user's search ran its 3 steps ({searched})")
check(compared == 20 and not disagree,
      f"each search step's verdict equals a one-step search at its α, and moves α the right way "
      f"({compared} steps compared; {disagree[:3]})")
print(f"test_cw_search: {time.time() - T0:.1f} s")
done()
