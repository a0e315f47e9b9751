"""tests/test_dist_mpi.py — data-parallel training over MPI (mpirun, 2 ranks on the CPU backend):
one rank with --dist mpi equals a run without it bit for bit; 2 ranks × B/2 equal 1 × B up to
float reduction order (bounded, with uneven shards and the watermark regularizer split), while one
rank at B/2 is far off; a 2-rank run of a batch-norm net stopped by --stop-after, and one stopped by
a real signal sent to rank 1 only, resume to the uninterrupted run's weights bit for bit; a rank
that stops (SIGSTOP) is caught by the other's watchdog (DNNGUARD_DIST_TIMEOUT), which ends the job
with exit 4 and one line; ranks
started with different options, an unknown --dist and a launcher without --dist are refused with
one line; a loss that turns non-finite mid-run and an infip model whose relevance overflows end
every rank with exit 2 and one line, never through MPI_Abort; `infip extract`, `verify` and `calibrate`
split their keys across 2 ranks and agree with 1. In a build without MPI it checks the one-line refusal of --dist mpi instead."""
import filecmp
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_check import DNNGUARD, MNIST, check, done, expect_bad, run  # noqa: E402
import numpy as np  # noqa: E402
import st_io  # noqa: E402

tmp = tempfile.mkdtemp(prefix="dg-dist-")
P = lambda name: os.path.join(tmp, name)

probe = run("train", "--net", "lenet5", "--data", "synthetic:1,28,28,10,8", "--epochs", "1", "--out", P("p.st"),
            "--dist", "mpi", "--eval-every", "0")
if "built without MPI" in probe.stderr:
    expect_bad(["train", "--net", "lenet5", "--data", MNIST, "--out", P("x.st"), "--dist", "mpi"], "without MPI",
               "--dist mpi in a build without MPI")
    print("(this build has no MPI: the multi-rank checks need libopenmpi-dev)")
    done()
MPIRUN = shutil.which("mpirun")
check(MPIRUN is not None, "mpirun is installed (openmpi-bin)")
if MPIRUN is None:
    done()

# One thread per rank: two ranks on a two-core machine, neither oversubscribing it.
ENV = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", OMPI_ALLOW_RUN_AS_ROOT="1",
           OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")


def mpirun(ranks, *args, timeout=600):
    return subprocess.run([MPIRUN, "-np", str(ranks), DNNGUARD, *args], capture_output=True, text=True,
                          env=ENV, timeout=timeout)


def run1(*args):
    """One process, with the ranks' thread count (the thread count changes the float sums)."""
    return subprocess.run([DNNGUARD, *args], capture_output=True, text=True, env=ENV, timeout=600)


def weights(path):
    return {k: np.asarray(v, dtype=np.float64) for k, v in st_io.read(path).items()}


def worst_relative(a, b):
    """max over tensors of max|a − b| / max|a|"""
    wa, wb = weights(a), weights(b)
    return max(np.abs(wa[k] - wb[k]).max() / max(np.abs(wa[k]).max(), 1e-30) for k in wa)


# 1. Bad input, before any training.
expect_bad(["train", "--net", "lenet5", "--data", MNIST, "--out", P("x.st"), "--dist", "gloo"], "--dist",
           "an unknown --dist")
r = subprocess.run([DNNGUARD, "train", "--net", "lenet5", "--data", MNIST, "--out", P("x.st")], capture_output=True,
                   text=True, env=dict(ENV, OMPI_COMM_WORLD_SIZE="2"))
lines = r.stderr.strip().splitlines()
check(r.returncode == 2 and len(lines) == 1 and "--dist" in lines[0],
      f"one of 2 launched tasks without --dist is refused with one line (exit {r.returncode}: {r.stderr.strip()!r})")
r = subprocess.run([DNNGUARD, "infip", "extract", "--model", P("x.st"), "--net", "lenet5", "--keys", MNIST, "--out",
                    P("x-ref")], capture_output=True, text=True, env=dict(ENV, OMPI_COMM_WORLD_SIZE="2"))
check(r.returncode == 2 and r.stderr.count("\n") == 1 and "add --dist mpi" in r.stderr and "nccl" not in r.stderr
      and "train" not in r.stderr, f"... and for infip, which has no --dist nccl, says so ({r.stderr.strip()!r})")
# --dist nccl where nothing reduces on the device: refused before MPI starts, in any build
for args in (["infip", "extract", "--model", P("x.st"), "--net", "lenet5", "--keys", MNIST, "--out", P("x-ref")],
             ["fp", "issue", "--model", P("x.st"), "--net", "lenet5", "--data", MNIST, "--conf", "0.3", "--out",
              P("x-fps")]):
    r = subprocess.run([DNNGUARD, *args, "--dist", "nccl"], capture_output=True, text=True, env=ENV)
    check(r.returncode == 2 and r.stderr.count("\n") == 1 and "nothing to reduce on the device" in r.stderr,
          f"{' '.join(args[:2])} --dist nccl is refused with one line ({r.stderr.strip()!r})")
base = ["train", "--net", "lenet5", "--data", MNIST, "--subset", "1990", "--epochs", "1", "--eval-every", "0"]
t0 = time.time()
r = subprocess.run([MPIRUN, "-np", "1", DNNGUARD, *base, "--out", P("x.st"), "--seed", "1", "--dist", "mpi", ":",
                    "-np", "1", DNNGUARD, *base, "--out", P("x.st"), "--seed", "2", "--dist", "mpi"],
                   capture_output=True, text=True, env=ENV, timeout=300)
said = [l for l in r.stderr.splitlines() if l.startswith("dnnguard: ")]
check(r.returncode == 2 and len(said) == 1 and "different options" in said[0] and "MPI_ABORT" not in r.stderr
      and not os.path.exists(P("x.st")),
      f"ranks started with different options stop with exit 2 and one line from rank 0 ({r.returncode}, "
      f"{time.time() - t0:.1f} s, {said})")


def one_rank_lacks(args, lacking_rank):
    """The same command on 2 ranks from two working folders: a relative path in args names a file in
    P("here") that P("empty") lacks, so rank lacking_rank alone fails in the set-up."""
    here, empty = P("here"), P("empty")
    wdirs = [empty, here] if lacking_rank == 0 else [here, empty]
    exe = os.path.abspath(DNNGUARD)  # the working folders differ from this one
    return subprocess.run([MPIRUN, "-np", "1", "-wdir", wdirs[0], exe, *args, ":",
                           "-np", "1", "-wdir", wdirs[1], exe, *args], capture_output=True, text=True, env=ENV,
                          timeout=120)


os.makedirs(P("here"))
os.makedirs(P("empty"))
os.symlink(os.path.abspath(MNIST.split(":", 1)[1]), P("here/data"))
for lacking in (1, 0):  # a file missing on one node: every rank stops alike, with one line from the one that failed
    r = one_rank_lacks(["train", "--net", "lenet5", "--data", "mnist:data", "--subset", "200", "--epochs", "1",
                        "--eval-every", "0", "--out", P("x.st"), "--dist", "mpi"], lacking)
    lines = [l for l in r.stderr.splitlines() if l.startswith("dnnguard: ")]  # mpirun adds its notice of exit 2
    check(r.returncode == 2 and len(lines) == 1 and "no such file" in lines[0] and "MPI_ABORT" not in r.stderr
          and lines[0].startswith("dnnguard: rank 1 of 2: " if lacking else "dnnguard: data/")
          and not os.path.exists(P("x.st")),
          f"train: the data missing on rank {lacking} alone: exit 2 on every rank, the one line of stderr is that "
          f"rank's ({r.returncode}, {lines})")

# 2. One rank with --dist mpi is the one-process run, bit for bit.
sgd = base + ["--batch", "63", "--opt", "sgd", "--lr", "0.05", "--momentum", "0.9", "--nesterov", "--wd", "5e-4",
              "--seed", "4"]
single = run1(*sgd, "--out", P("single.st"))
one = mpirun(1, *sgd, "--out", P("one.st"), "--dist", "mpi", "--log", P("one.jsonl"))
check(single.returncode == 0 and one.returncode == 0 and filecmp.cmp(P("single.st"), P("one.st"), shallow=False),
      f"mpirun -np 1 --dist mpi writes the one-process run's weights bit for bit {one.stderr[-300:]}")
log = [json.loads(l) for l in open(P("one.jsonl"))] if one.returncode == 0 else [{}]
check(log[0].get("ranks") == 1 and "allreduce_ms_per_step" in log[0], "the log names the ranks and the all-reduce time")

# 3. 2 ranks × 31|32 (the global batch 63 split unevenly; the last batch of 37 as 18|19) equal
# 1 × 63 up to reduction order, for SGD and for Adam with the watermark regularizer, whose key
# positions are split across the ranks too.
two = mpirun(2, *sgd, "--out", P("two.st"), "--dist", "mpi", "--log", P("two.jsonl"))
half = run1(*[x if x != "63" else "32" for x in sgd], "--out", P("half.st"))
check(two.returncode == 0 and half.returncode == 0, f"2-rank SGD run {two.stderr[-300:]}")
if two.returncode == 0 and half.returncode == 0:
    d_two, d_half = worst_relative(P("single.st"), P("two.st")), worst_relative(P("single.st"), P("half.st"))
    check(d_two < 1e-5, f"2 × B/2 = 1 × B up to float rounding (worst relative difference {d_two:.2e} < 1e-5)")
    check(d_half > 1e-2, f"... while 1 × B/2 differs by {d_half:.2e} (the bound can fail)")
    l1 = json.loads(single.stderr.strip().splitlines()[-1]) if single.stderr.strip() else {}
    l2 = [json.loads(l) for l in open(P("two.jsonl"))][-1]
    check(abs(l1.get("train_loss", 0) - l2["train_loss"]) < 1e-5 and l1.get("train_acc") == l2["train_acc"]
          and l2["ranks"] == 2, f"the 2-rank log reports the global batch's loss and accuracy ({l2})")
key = run("wm", "keygen", "--model", P("single.st"), "--net", "lenet5", "--layer", "conv2.weight", "--digits",
          "1234567890210", "--seed", "7", "--out", P("key.json"))
adam = base + ["--batch", "64", "--opt", "adam", "--lr", "1e-3", "--seed", "6", "--init", P("single.st"),
               "--wm", P("key.json"), "--wm-lambda", "0.05"]
a1 = run1(*adam, "--out", P("adam1.st"))
a2 = mpirun(2, *adam, "--out", P("adam2.st"), "--dist", "mpi", "--log", P("adam2.jsonl"))
check(key.returncode == 0 and a1.returncode == 0 and a2.returncode == 0, f"Adam + watermark, 1 and 2 ranks {a2.stderr[-300:]}")
if a1.returncode == 0 and a2.returncode == 0:
    d = worst_relative(P("adam1.st"), P("adam2.st"))
    check(d < 1e-4, f"Adam + watermark: 2 × B/2 = 1 × B up to float rounding (worst relative difference {d:.2e} < 1e-4)")
    w1 = json.loads(a1.stderr.strip().splitlines()[-1])
    w2 = [json.loads(l) for l in open(P("adam2.jsonl"))][-1]
    check(abs(w1["wm_reg"] - w2["wm_reg"]) <= 1e-4 * abs(w1["wm_reg"]) and w1["wm_match"] == w2["wm_match"],
          f"the split regularizer sums to the whole one ({w1['wm_reg']} vs {w2['wm_reg']})")

# 4. Resume across 2 ranks, batch norm included (running statistics are averaged in the gradient
# all-reduce, so rank 0's checkpoint holds all of the state): --stop-after, then a real SIGUSR1 sent
# to rank 1 alone, which must stop both ranks at the same step.
bn = ["train", "--net", "wrn-10-1", "--data", "synthetic:3,32,32,10,160", "--epochs", "2", "--batch", "32",
      "--opt", "sgd", "--lr", "0.05", "--seed", "3", "--eval-every", "1", "--dist", "mpi"]
u = mpirun(2, *bn, "--out", P("bn.st"))
s1 = mpirun(2, *bn, "--out", P("bn-r.st"), "--stop-after", "3")
s2 = mpirun(2, *bn, "--out", P("bn-r.st"), "--resume")
check(u.returncode == 0 and s1.returncode == 3 and s2.returncode == 0
      and filecmp.cmp(P("bn.st"), P("bn-r.st"), shallow=False),
      f"2 ranks, batch norm: stopped after 3 steps (exit {s1.returncode}) and resumed = uninterrupted, bit for bit")
# the running statistics travel through the gradient all-reduce: their slots must be zero again when
# --clip-grad-norm takes the norm of the whole gradient arena. A bound above the gradients' norm (here
# 10) then changes no bit; counted with the statistics, the norm passed it and the run was clipped.
c = mpirun(2, *bn, "--out", P("bn-clip.st"), "--clip-grad-norm", "10")
check(u.returncode == 0 and c.returncode == 0 and filecmp.cmp(P("bn.st"), P("bn-clip.st"), shallow=False),
      f"2 ranks, batch norm: a clip norm above the gradients' changes no bit {c.stderr[-200:]}")

longer = sgd[:] + ["--dist", "mpi"]
longer[longer.index("1990")] = "6000"
longer[longer.index("--epochs") + 1] = "3"
ref = mpirun(2, *longer, "--out", P("ref.st"))
proc = subprocess.Popen([MPIRUN, "-np", "2", DNNGUARD, *longer, "--out", P("sig.st")], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True, env=ENV)


def rank_pid(parent, rank):
    """The pid of the dnnguard process of MPI rank `rank` under mpirun `parent` (its environment)."""
    for pid in os.listdir("/proc"):
        try:
            if not pid.isdigit() or int(open(f"/proc/{pid}/stat").read().split(") ")[1].split()[1]) != parent:
                continue
            env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
            if f"OMPI_COMM_WORLD_RANK={rank}".encode() in env:
                return int(pid)
        except (OSError, IndexError, ValueError):
            continue
    return None


ckpt = P("sig.st.ckpt.safetensors")
deadline = time.time() + 300
while not os.path.exists(ckpt) and proc.poll() is None and time.time() < deadline:
    time.sleep(0.05)  # the first epoch's checkpoint: training is under way
pid = rank_pid(proc.pid, 1)
if pid:
    os.kill(pid, signal.SIGUSR1)
out, err = proc.communicate(timeout=600)
stopped = proc.returncode == 3
resumed = mpirun(2, *longer, "--out", P("sig.st"), "--resume") if stopped else None
check(pid is not None and stopped and "another rank" in err,
      f"SIGUSR1 to rank 1 alone stops both ranks with a checkpoint, exit 3 (exit {proc.returncode})")
check(ref.returncode == 0 and resumed is not None and resumed.returncode == 0
      and filecmp.cmp(P("ref.st"), P("sig.st"), shallow=False),
      "... and --resume ends with the uninterrupted 2-rank run's weights bit for bit")

# 5. A rank that stops (SIGSTOP: a hung node, as far as the others can tell) does not hold the job:
# rank 0's watchdog ends it past DNNGUARD_DIST_TIMEOUT with exit 4 and one line naming the wait,
# and mpirun then ends the stopped rank.
proc = subprocess.Popen([MPIRUN, "-np", "2", DNNGUARD, *longer, "--out", P("hang.st")], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True, env=dict(ENV, DNNGUARD_DIST_TIMEOUT="3"))
ckpt = P("hang.st.ckpt.safetensors")
deadline = time.time() + 300
while not os.path.exists(ckpt) and proc.poll() is None and time.time() < deadline:
    time.sleep(0.05)
pid = rank_pid(proc.pid, 1)
t0 = time.time()
if pid:
    os.kill(pid, signal.SIGSTOP)
try:
    out, err = proc.communicate(timeout=120)
except subprocess.TimeoutExpired:
    proc.kill()
    out, err = proc.communicate()
waited = time.time() - t0


def gone(pid):
    try:
        return open(f"/proc/{pid}/stat").read().split(") ")[1].split()[0] in "ZX"
    except OSError:
        return True


for _ in range(50):  # mpirun ends the other ranks right after the first one exits
    if pid is None or gone(pid):
        break
    time.sleep(0.1)
ended = pid is not None and gone(pid)
if pid and not gone(pid):
    os.kill(pid, signal.SIGKILL)
# rank 0 waits in the gradient all-reduce or, when rank 1 stopped between the two, in the step's
# sums; rank 1, sent SIGCONT and SIGTERM by mpirun, may write its own line before it is killed
line = [l for l in err.splitlines() if l.startswith("dnnguard: train: rank 0 of 2: ")]
check(pid is not None and proc.returncode == 4 and 3 <= waited < 30 and len(line) == 1
      and "did not complete within 3 s" in line[0],
      f"a stopped rank 1: rank 0 ends the job after {waited:.1f} s, exit {proc.returncode}, with one line {line}")
check(ended, "... and the stopped rank is ended too")
# 5b. A rank that never reaches MPI_Init (its node hangs before it starts): the ranks that did
# wait in MPI_Init for it, under the watchdog too.
late = [MPIRUN, "-np", "2", "sh", "-c", 'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then sleep 60; fi; exec "$0" "$@"',
        DNNGUARD, *longer, "--out", P("late.st")]
t0 = time.time()
r = subprocess.run(late, capture_output=True, text=True, env=dict(ENV, DNNGUARD_DIST_TIMEOUT="3"), timeout=120)
waited = time.time() - t0
line = [l for l in r.stderr.splitlines() if l.startswith("dnnguard: train: starting MPI: ")]
check(r.returncode == 4 and 3 <= waited < 40 and len(line) == 1 and "MPI_Init" in line[0],
      f"a rank that starts 60 s late: rank 0 ends the job from MPI_Init after {waited:.1f} s, exit {r.returncode}, "
      f"one line {line or r.stderr.strip()[-300:]}")
r = subprocess.run([DNNGUARD, *longer, "--out", P("x.st")], capture_output=True, text=True,
                   env=dict(ENV, DNNGUARD_DIST_TIMEOUT="soon"), timeout=120)
check(r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "DNNGUARD_DIST_TIMEOUT" in r.stderr
      and not os.path.exists(P("x.st")), f"a DNNGUARD_DIST_TIMEOUT that is not seconds: one line, exit 2 ({r.stderr!r})")

# InFIP: the keys split across 2 ranks, the results gathered on rank 0, which writes the reference
r = run1("train", "--net", "lenet5", "--data", MNIST, "--subset", "2000", "--epochs", "1", "--eval-every", "0",
         "--out", P("infip.st"))
ext = ["infip", "extract", "--model", P("infip.st"), "--net", "lenet5", "--keys", MNIST, "--n", "21", "--seed", "4",
       "--batch", "4"]
one = run1(*ext, "--out", P("ref1"))
two = mpirun(2, *ext, "--out", P("ref2"), "--dist", "mpi")
if check(r.returncode == 0 and one.returncode == 0 and two.returncode == 0 and json.loads(two.stdout)["ranks"] == 2,
         f"infip extract on 1 and on 2 ranks ({two.stderr.strip()[-300:]})"):
    m1 = json.load(open(P("ref1/manifest.json")))
    m2 = json.load(open(P("ref2/manifest.json")))
    R1 = st_io.read(P("ref1/relevance.safetensors"))["relevance"]
    R2 = st_io.read(P("ref2/relevance.safetensors"))["relevance"]
    same_keys = [(k["index"], k["predicted"], k["key_sha256"]) for k in m1["keys"]] == \
        [(k["index"], k["predicted"], k["key_sha256"]) for k in m2["keys"]]
    e = float(np.abs(R1 - R2).max() / np.abs(R1).max())
    check(same_keys and e < 1e-5, f"2 ranks: the same keys and predictions, relevance within {e:.1e} of 1 rank's "
                                 "(other batches round differently)")
    ver = ["infip", "verify", "--model", P("infip.st"), "--reference", P("ref2"), "--batch", "4"]
    v2 = mpirun(2, *ver, "--dist", "mpi")
    v1 = run1(*ver)
    a2 = json.loads(v2.stdout)["assim"] if v2.returncode == 0 else None
    a1 = json.loads(v1.stdout)["assim"] if v1.returncode == 0 else None
    check(a2 == 1.0 and a1 is not None and a1 > 0.999,
          f"infip verify on 2 ranks of its own 2-rank reference: ASSIM {a2} (1 rank: {a1})")
    shutil.copy(P("infip.st"), P("here/suspect.st"))
    r = one_rank_lacks(["infip", "verify", "--model", "suspect.st", "--reference", P("ref2"), "--dist", "mpi"], 1)
    lines = [l for l in r.stderr.splitlines() if l.startswith("dnnguard: ")]
    check(r.returncode == 2 and len(lines) == 1 and lines[0].startswith("dnnguard: rank 1 of 2: suspect.st")
          and "MPI_ABORT" not in r.stderr
          and r.stdout == "",
          f"infip verify: the suspect missing on rank 1 alone: exit 2, one line, no verdict ({r.returncode}, {lines})")
    r = run1("train", "--net", "lenet5", "--data", MNIST, "--subset", "2000", "--epochs", "1", "--eval-every", "0",
             "--seed", "2", "--out", P("infip-indep.st"))
    shutil.copytree(P("ref1"), P("ref1-cal"))
    cal = ["infip", "calibrate", "--independent", P("infip-indep.st"), "--batch", "4"]
    c1 = run1(*cal, "--reference", P("ref1"))
    c2 = mpirun(2, *cal, "--reference", P("ref1-cal"), "--dist", "mpi")
    if check(r.returncode == 0 and c1.returncode == 0 and c2.returncode == 0 and json.loads(c2.stdout)["ranks"] == 2,
             f"infip calibrate on 1 and on 2 ranks ({c2.stderr.strip()[-300:]})"):
        t1 = json.load(open(P("ref1/calibration.json")))["thresholds"]
        t2 = json.load(open(P("ref1-cal/calibration.json")))["thresholds"]
        check(all(abs(t1[f] - t2[f]) < 1e-3 for f in ("global", "gaussian")),
              f"2 ranks calibrate as 1 does, up to other batches' rounding ({t1} against {t2})")
        os.makedirs(P("ref1-cal/calibration.json.d"))  # a folder where rank 0 must write the file
        os.replace(P("ref1-cal/calibration.json"), P("ref1-cal-old.json"))
        os.rename(P("ref1-cal/calibration.json.d"), P("ref1-cal/calibration.json"))
        bad = mpirun(2, *cal, "--reference", P("ref1-cal"), "--dist", "mpi", "--force")
        said = [l for l in bad.stderr.splitlines() if l.startswith("dnnguard: ")]
        check(bad.returncode == 2 and len(said) == 1 and "is a folder" in said[0],
              f"2 ranks, an output rank 0 cannot write: exit 2 before any scoring, said once "
              f"({bad.returncode}, {said})")

# 5. Failures after the set-up: the ranks meet wherever one can fail apart from the others, and a
# check every rank makes alike is said by rank 0 alone, so every rank exits 2 through MPI_Finalize
# with one line, not through MPI_Abort (its banner and a line per rank).
def one_line_exit2(r, needle):
    said = [l for l in r.stderr.splitlines() if l.startswith("dnnguard: ")]
    return r.returncode == 2 and len(said) == 1 and needle in said[0] and "MPI_ABORT" not in r.stderr, said


r = mpirun(2, *base, "--opt", "sgd", "--lr", "1e8", "--out", P("nan.st"), "--dist", "mpi")
ok, said = one_line_exit2(r, "lower --lr")
check(ok and not os.path.exists(P("nan.st")),
      f"2 ranks, a loss that turns non-finite mid-run: exit 2, one line from rank 0, no MPI_Abort ({r.returncode}, {said})")
if os.path.exists(P("infip.st")):
    w = st_io.read(P("infip.st"))
    w["fc1.weight"][...] = 3e38  # finite weights whose logits overflow: found only once relevance is computed
    st_io.write(P("huge.st"), w)
    r = mpirun(2, *ext, "--model", P("huge.st"), "--out", P("ref-huge"), "--dist", "mpi")
    ok, said = one_line_exit2(r, "not finite")
    check(ok and not os.path.exists(P("ref-huge/manifest.json")),
          f"2 ranks, infip extract of a model whose relevance overflows: exit 2, one line, nothing written "
          f"({r.returncode}, {said})")
    r = mpirun(2, "infip", "calibrate", "--independent", P("huge.st"), "--batch", "4", "--reference", P("ref2"),
               "--dist", "mpi")
    ok, said = one_line_exit2(r, "not finite")
    check(ok and not os.path.exists(P("ref2/calibration.json")),
          f"2 ranks, infip calibrate against such a model: exit 2, one line, nothing written ({r.returncode}, {said})")

# A set-up warning is said once, by rank 0, not once per rank
r = run1("train", "--net", "lenet5", "--data", MNIST, "--subset", "500", "--epochs", "1", "--eval-every", "0",
         "--normalize", "0.5/0.5", "--out", P("half.st"))
w = mpirun(2, "fp", "issue", "--model", P("half.st"), "--net", "lenet5", "--data", MNIST, "--conf", "0.4",
           "--classes", "2", "--retries", "0", "--out", P("half-fps"), "--dist", "mpi")
said = [l for l in w.stderr.splitlines() if "trained with --normalize 0.5/0.5" in l]
check(r.returncode == 0 and len(said) == 1 and said[0].startswith("dnnguard: warning: "),
      f"2 ranks, a model trained with another --normalize: the warning said once ({said})")

shutil.rmtree(tmp, ignore_errors=True)
done()
