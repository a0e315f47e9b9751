"""tests/cli_check.py — what the end-to-end Python tests share: where the binary and the data are,
running the binary, a counting check() that prints ok/FAIL lines, the one-line-exit-2 rule for bad
input, parsing a JSON result, a file's SHA-256, and the closing summary (the process exit code).
Test helper only."""
import hashlib
import json
import os
import subprocess
import sys

DNNGUARD = os.environ.get("DNNGUARD", "build/dnnguard")
SHARED = os.environ.get("DG_SHARED_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
MNIST = "mnist:" + os.path.join(SHARED, "mnist")
CIFAR = "cifar10:" + os.path.join(SHARED, "cifar10")

_counts = {"passed": 0, "failed": 0}


def check(cond, what):
    _counts["passed" if cond else "failed"] += 1
    print(("ok   " if cond else "FAIL ") + what)
    return bool(cond)


def run(*args, timeout=900):
    return subprocess.run([DNNGUARD, *args], capture_output=True, text=True, timeout=timeout)


def expect_bad(args, must_mention, what):
    """Bad input: exit 2, exactly one line on stderr that mentions must_mention, nothing on stdout."""
    r = run(*args)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    ok = r.returncode == 2 and len(lines) == 1 and must_mention in lines[0] and not r.stdout.strip()
    check(ok, f"bad input: {what} -> exit {r.returncode}, stderr {r.stderr.strip()!r}")


def parse(stdout):
    """a command's JSON line, or {} when it printed none"""
    try:
        return json.loads(stdout)
    except ValueError:
        return {}


def sha256(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def done():
    print(f"{_counts['passed']} passed, {_counts['failed']} failed")
    sys.exit(1 if _counts["failed"] else 0)
