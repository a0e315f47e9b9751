"""tests/test_slurm.py — scripts/slurm/ on a real one-node Slurm cluster started here from Debian's
slurm-wlm and munge (tests/slurm_cluster.sh: munged, slurmctld -D, slurmd -D, a generated
slurm.conf in a temporary folder): the ActiveGuard pipeline (train → keygen → embed → fingerprints
→ auth, prune and fine-tune arrays → verify arrays with aftercorr → report) on a small LeNet-5
setting with 2-rank MPI training jobs under srun --mpi=pmix, whose weights equal mpirun's 2-rank
run bit for bit; two training jobs preempted mid-run, one by the time-limit warning (SIGUSR1: the
job requeues itself) and one by a requeue (SIGTERM: Slurm requeues it), whose requeued runs end
with the weights of an uninterrupted run; a training job cancelled with scancel after its checkpoint
stays cancelled (it does not requeue itself); train.sbatch submitted from a folder whose name has a
space, with --ntasks-per-node=2 (no #SBATCH --ntasks=1 to outrank it), runs 2 ranks; tasks that MPI
cannot join (srun --mpi=none) and a sweep task without a value are refused. Every daemon it started
is stopped at the end, also on failure, and so is a job left running (slurmstepd and the job's
processes outlive slurmd). Needs root (CI runs as root)."""
import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_check import DNNGUARD, MNIST, check, done  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SLURM = os.path.join(HERE, "..", "scripts", "slurm")
CLUSTER = os.path.join(HERE, "slurm_cluster.sh")

# run-step.sh's choice of --dist, outside a job (it runs the command once, here /bin/echo): every
# command that splits its work across ranks gets --dist on several tasks, the others none
env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
for command, tasks, backend, want in [("train", 2, "cpu", ["--dist", "mpi", "--resume"]),
                                      ("train", 2, "cuda", ["--dist", "nccl", "--resume"]),
                                      ("train", 1, "cpu", ["--dist", "none", "--resume"]),
                                      ("attack finetune", 2, "cpu", ["--dist", "mpi", "--resume"]),
                                      ("fp issue", 2, "cuda", ["--dist", "mpi"]),
                                      ("infip extract", 2, "cpu", ["--dist", "mpi"]),
                                      ("infip verify", 2, "cuda", ["--dist", "mpi"]),
                                      ("infip calibrate", 2, "cpu", ["--dist", "mpi"]),
                                      ("wm verify", 2, "cpu", [])]:
    args = [*command.split(), "--backend", backend]
    r = subprocess.run([os.path.join(SLURM, "run-step.sh"), *args], capture_output=True, text=True,
                       env=dict(env, DNNGUARD="/bin/echo", SLURM_NTASKS=str(tasks)))
    check(r.returncode == 0 and r.stdout.split() == args + want,
          f"run-step.sh {command} --backend {backend} on {tasks} tasks adds {want or 'nothing'} ({r.stdout.strip()})")

# pipeline.sh with an sbatch that fails at its 4th submission (a stand-in on PATH, no cluster): one
# line, exit 2, and the 3 stages already submitted are cancelled
fake = tempfile.mkdtemp(prefix="dg-fake-sbatch-")
with open(os.path.join(fake, "sbatch"), "w") as fh:
    fh.write('#!/bin/sh\nn=$(($(cat "$0.n" 2>/dev/null || echo 0) + 1)); echo $n >"$0.n"\n'
             '[ $n -lt 4 ] || { echo "sbatch: error: stand-in failure" >&2; exit 1; }\necho $((100 + n))\n')
with open(os.path.join(fake, "scancel"), "w") as fh:
    fh.write('#!/bin/sh\necho "$@" >>"$0.log"\n')
for name in ("sbatch", "scancel"):
    os.chmod(os.path.join(fake, name), 0o755)
r = subprocess.run(["bash", os.path.join(SLURM, "pipeline.sh"), "--data", MNIST, "--out", os.path.join(fake, "out")],
                   capture_output=True, text=True, env=dict(env, PATH=fake + ":" + env["PATH"]))
cancelled = open(os.path.join(fake, "scancel.log")).read().split() if os.path.exists(os.path.join(fake, "scancel.log")) else []
lines = [line for line in r.stderr.splitlines() if line.startswith("pipeline.sh:")]
check(r.returncode == 2 and cancelled == ["101", "102", "103"] and len(lines) == 1 and "verify-embedded" in lines[0],
      f"pipeline.sh: a failed 4th submission exits 2 in one line and cancels the 3 before it "
      f"(exit {r.returncode}, cancelled {cancelled}, {r.stderr.strip()[-200:]!r})")
shutil.rmtree(fake, ignore_errors=True)

missing = [t for t in ("munged", "slurmctld", "slurmd", "sbatch", "mpirun") if not shutil.which(t)]
check(not missing, f"slurm-wlm, munge and openmpi-bin are installed (scripts/setup.sh --test); missing: {missing}")
check(os.geteuid() == 0, "running as root (slurmd starts the jobs)")
probe = subprocess.run([DNNGUARD, "train", "--dist", "mpi", "--out", "/nonexistent/x", "--net", "lenet5", "--data",
                        "synthetic:1,28,28,10,8"], capture_output=True, text=True, env=dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1",
                        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1"))
check("without MPI" not in probe.stderr, "the binary was built with MPI (libopenmpi-dev, which scripts/setup.sh --test installs)")
if missing or os.geteuid() != 0 or "without MPI" in probe.stderr:
    done()

tmp = tempfile.mkdtemp(prefix="dg-slurm-")
P = lambda *names: os.path.join(tmp, *names)
ENV = dict(os.environ, DNNGUARD=os.path.abspath(DNNGUARD), OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE",
           OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def sh(*args, timeout=300, **kw):
    return subprocess.run(list(args), capture_output=True, text=True, env=ENV, timeout=timeout, **kw)


def wait_idle(seconds):
    """Until the queue is empty (True) or seconds pass (False)."""
    end = time.time() + seconds
    while time.time() < end:
        q = sh("squeue", "-h", "-o", "%i %T")
        if q.returncode == 0 and not q.stdout.strip():
            return True
        time.sleep(0.5)
    return False


def job_processes():
    """pids of processes left by this cluster's jobs: SLURM_CONF ours and a SLURM_JOB_ID"""
    conf, found = ("SLURM_CONF=" + P("cluster", "slurm.conf")).encode(), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if conf in env and any(e.startswith(b"SLURM_JOB_ID=") for e in env) and state != "Z":
            found.append(pid)
    return found


t_start = time.time()
try:
    up = sh("bash", CLUSTER, "start", P("cluster"), timeout=180)
    check(up.returncode == 0, f"a one-node cluster starts (munged, slurmctld, slurmd) {up.stderr.strip()[-400:]}")
    if up.returncode == 0:
        ENV["SLURM_CONF"] = P("cluster", "slurm.conf")
        r = sh("srun", "--mpi=list")
        plugins = r.stdout + r.stderr
        check("pmix" in plugins, f"srun --mpi=list offers pmix ({' '.join(plugins.split())})")

        # 1. the pipeline, 2 ranks for the training jobs and the fingerprints
        t0 = time.time()
        r = sh("bash", os.path.join(SLURM, "pipeline.sh"), "--data", MNIST, "--out", P("pipe"), "--subset", "2000",
               "--epochs", "1", "--wm-epochs", "3", "--wm-lambda", "1", "--digits", "2345678765432", "--ranks", "2",
               "--backend", "cpu", "--batch", "32", "--lr", "2e-3", "--seed", "1", "--prune-rates", "0.1,0.9",
               "--finetune-epochs", "1", "--users", "2", "--conf", "0.5",
               "--fp", "--iters 1000 --search-steps 3 --classes 0-1", "--wait", timeout=900)
        submitted = json.loads(r.stdout.strip().splitlines()[0]) if r.stdout.strip().startswith("{") else {}
        check(r.returncode == 0 and len(submitted.get("jobs", {})) == 11,
              f"pipeline.sh submits 11 jobs and arrays and its report finds every result "
              f"(exit {r.returncode}, {time.time() - t0:.0f} s) {r.stderr.strip()[-300:]}")
        report = json.load(open(P("pipe", "report.json"))) if os.path.exists(P("pipe", "report.json")) else {}
        check(report.get("complete") is True and report.get("missing") == 0, "the report is complete")
        check((report.get("verify_embedded") or {}).get("verified") is True,
              "the embedded watermark verifies (stage embed, 2 ranks)")
        pruned = report.get("verify_pruned") or {}
        check((pruned.get("0.1") or {}).get("verified") is True and (pruned.get("0.9") or {}).get("verified") is False,
              "it survives pruning 10% and not 90% (the prune array → verify array with aftercorr)")
        check(isinstance((report.get("verify_finetuned") or {}).get("1"), dict), "the fine-tuning array's model was verified")
        fps = report.get("fingerprints") or {}
        auth = report.get("auth") or []
        check(fps.get("issued", 0) >= 1 and len(auth) == fps.get("issued") and all(a and a.get("authorized") for a in auth),
              f"fingerprints issued over 2 ranks ({fps.get('issued')}) all authenticate on the model ({len(auth)})")
        log = open(P("pipe", "logs", "train.err")).read() if os.path.exists(P("pipe", "logs", "train.err")) else ""
        check('"ranks": 2' in log, "the training job ran as 2 MPI ranks under srun --mpi=pmix")

        # 2. the srun job's weights are mpirun's 2-rank run's, bit for bit
        clean = ["train", "--net", "lenet5", "--data", MNIST, "--backend", "cpu", "--batch", "32", "--opt", "adam",
                 "--lr", "2e-3", "--seed", "1", "--subset", "2000", "--epochs", "1", "--dist", "mpi"]
        r = sh("mpirun", "-np", "2", DNNGUARD, *clean, "--out", P("mpirun.st"))
        check(r.returncode == 0 and filecmp.cmp(P("mpirun.st"), P("pipe", "models", "clean.safetensors"), shallow=False),
              f"srun --mpi=pmix -n 2 and mpirun -np 2 train the same weights bit for bit {r.stderr[-200:]}")

        # 3. preemption: two jobs stopped after their first epoch's checkpoint, then requeued. Enough
        # epochs that a job is still training when its signal arrives (4 epochs of LeNet-5 take about a
        # second, and a job that had already finished wrote no checkpoint on the signal)
        train = ["--net", "lenet5", "--data", MNIST, "--subset", "6000", "--epochs", "12", "--batch", "32", "--opt",
                 "sgd", "--lr", "0.05", "--seed", "9", "--eval-every", "0", "--backend", "cpu"]
        ref = sh(DNNGUARD, "train", *train, "--out", P("ref.st"))
        jobs = {}
        for kind in ("usr1", "term"):
            r = sh("sbatch", "--parsable", "-o", P(f"{kind}.out"), os.path.join(SLURM, "train.sbatch"), *train,
                   "--out", P(f"{kind}.st"))
            jobs[kind] = r.stdout.strip().split(";")[0]
        deadline = time.time() + 120
        while time.time() < deadline and not all(os.path.exists(P(f"{k}.st.ckpt.safetensors")) for k in jobs):
            time.sleep(0.05)
        # the time-limit warning (--signal=USR1@120) as Slurm delivers it, to the job's steps
        sh("scancel", "--signal=USR1", jobs["usr1"])
        # what a preemption with PreemptMode=REQUEUE does: SIGTERM to the job, then back to the queue
        sh("scontrol", "requeue", jobs["term"])
        finished = wait_idle(240)
        out = {k: open(P(f"{k}.out")).read() if os.path.exists(P(f"{k}.out")) else "" for k in jobs}
        for kind, sig in (("usr1", "signal 10"), ("term", "signal 15")):
            restarts = sh("scontrol", "show", "job", "-o", jobs[kind]).stdout
            m = re.search(r"Restarts=(\d+)", restarts)
            check(f"dnnguard: {sig}: checkpoint written" in out[kind] and "resuming from" in out[kind]
                  and m is not None and int(m.group(1)) >= 1,
                  f"{kind}: the job checkpointed on {sig}, was requeued and resumed (restarts {m.group(1) if m else '?'})"
                  f" {out[kind].strip()[-300:]!r}")
            check(finished and ref.returncode == 0 and os.path.exists(P(f"{kind}.st"))
                  and filecmp.cmp(P("ref.st"), P(f"{kind}.st"), shallow=False),
                  f"{kind}: the requeued job ends with the uninterrupted run's weights bit for bit")

        # 3b. scancel after the checkpoint: the job stays cancelled (run-step.sh does not requeue after
        # a SIGTERM; it requeued itself, so a user's scancel brought it back)
        r = sh("sbatch", "--parsable", "-o", P("cancel.out"), os.path.join(SLURM, "train.sbatch"), *train,
               "--out", P("cancel.st"))
        job = r.stdout.strip().split(";")[0]
        deadline = time.time() + 120
        while time.time() < deadline and not os.path.exists(P("cancel.st.ckpt.safetensors")):
            time.sleep(0.05)
        sh("scancel", job)
        gone = wait_idle(60)
        time.sleep(5)  # two scheduler passes: a requeued job would be back by now
        state = sh("scontrol", "show", "job", "-o", job).stdout
        text = open(P("cancel.out")).read() if os.path.exists(P("cancel.out")) else ""
        fields = re.findall(r"JobState=\S+|Restarts=\S+", state)
        check(gone and "JobState=CANCELLED" in state and "Restarts=0" in state and "not requeueing" in text
              and not sh("squeue", "-h", "-j", job).stdout.strip(),
              f"scancel of a training job after its checkpoint: cancelled, not requeued "
              f"({fields})")

        # 3c. train.sbatch from a folder with a space in its name, 2 tasks by --ntasks-per-node
        spaced = P("scripts here")
        shutil.copytree(SLURM, spaced)
        r = sh("sbatch", "--wait", "-N", "1", "--ntasks-per-node=2", "-o", P("spaced.out"),
               os.path.join(spaced, "train.sbatch"), "--net", "lenet5", "--data", MNIST, "--subset", "256", "--epochs",
               "1", "--batch", "32", "--eval-every", "0", "--backend", "cpu", "--out", P("spaced.st"), timeout=300)
        text = open(P("spaced.out")).read() if os.path.exists(P("spaced.out")) else ""
        check(r.returncode == 0 and '"ranks": 2' in text and os.path.exists(P("spaced.st")),
              f"train.sbatch from '{spaced}' with --ntasks-per-node=2 trains on 2 ranks (exit {r.returncode}) "
              f"{text.strip()[-200:]}")

        # 4. tasks that MPI cannot join into one world (srun --mpi=none) stop instead of training alone:
        # OpenMPI refuses a direct launch without PMI in MPI_Init (exit 1, its own message); an MPI
        # that starts singletons instead meets dnnguard's own check (exit 2, "MPI sees one")
        r = sh("srun", "--mpi=none", "-n", "2", DNNGUARD, "train", *train, "--dist", "mpi", "--out", P("alone.st"))
        check(r.returncode in (1, 2) and ("PMI" in r.stderr or "MPI sees one" in r.stderr)
              and not os.path.exists(P("alone.st")), f"srun --mpi=none -n 2 ... --dist mpi stops (exit {r.returncode})")

        # 5. a sweep task outside the array's values is refused
        r = sh("sbatch", "--wait", "--array=5", "-o", P("sweep-%a.out"), os.path.join(SLURM, "sweep.sbatch"), "0.1,0.2",
               "attack", "prune", "--model", P("ref.st"), "--rate", "{}", "--out", P("never-{}.st"))
        text = open(P("sweep-5.out")).read() if os.path.exists(P("sweep-5.out")) else ""
        check(r.returncode != 0 and "no value" in text and not os.path.exists(P("never-.st")),
              f"sweep.sbatch refuses task 5 of 2 values ({text.strip()[:120]!r})")

        # 6. a job still running when the cluster is stopped (below) must not outlive it
        r = sh("sbatch", "--parsable", "-o", "/dev/null", "--wrap", "sleep 600")
        deadline = time.time() + 30
        while time.time() < deadline and not job_processes():
            time.sleep(0.2)
        check(bool(job_processes()), "a sleeping job runs before the cluster is stopped")
finally:
    pids = [open(P("cluster", f"{name}.pid")).read().strip() for name in ("munged", "slurmctld", "slurmd")
            if os.path.exists(P("cluster", f"{name}.pid"))]
    down = sh("bash", CLUSTER, "stop", P("cluster"), timeout=120)
    left = [pid for pid in pids if os.path.exists(f"/proc/{pid}")]
    check(down.returncode == 0 and len(pids) == 3 and not left,
          f"every daemon the test started ({len(pids)}) is stopped (left: {left})")
    jobs_left = job_processes()
    check(not jobs_left, f"no process of the cluster's jobs is left (left: {jobs_left})")
    print(f"({time.time() - t_start:.0f} s)")
    shutil.rmtree(tmp, ignore_errors=True)
done()
