"""tests/test_pt_write.py — host/torch_pt_write.c against PyTorch: what dnnguard writes to a .pt or
.pth path must be what torch.load (weights_only True and False) reads as the same OrderedDict of
tensors, bit for bit in every dtype (0-dim, empty and 8-dim tensors too), in a zip whose CRCs
Python's zipfile checks and whose tensor data start on 64 bytes as torch's do; the C reader must
read it back with the metadata; the same input gives the same bytes; train --out m.pt writes the
weights of --out m.safetensors, which torch's own LeNet-5 and resnet18-cifar load with
strict=True; snapshots keep the format, checkpoints stay safetensors; attack prune carries the
metadata from .pt to .pt; a damaged metadata entry is refused with one line. Touches only a temp
dir."""
import collections
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_check import MNIST, check, done, expect_bad, parse, run  # noqa: E402
import numpy as np  # noqa: E402
import st_io  # noqa: E402
import torch  # noqa: E402
import torch_nets  # noqa: E402

TOOL = os.environ.get("DG_TOOL_SAFETENSORS", "./tool_safetensors")
tmp = tempfile.mkdtemp(prefix="dg-ptw-")
P = lambda name: os.path.join(tmp, name)


def tool(*args):
    return subprocess.run([TOOL, *args], capture_output=True, text=True)


def raw(t):
    """a tensor's dtype, shape and bytes"""
    return t.dtype, tuple(t.shape), t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""


def same_dicts(got, want):
    return (isinstance(got, collections.OrderedDict) and list(got) == list(want)
            and all(raw(got[k]) == raw(want[k]) for k in want))


def loads(path):
    """torch.load(path) with weights_only True and False, or the exception's text"""
    out = []
    for wo in (True, False):
        try:
            out.append(torch.load(path, weights_only=wo))
        except Exception as e:  # noqa: BLE001 - any failure is the finding
            out.append(f"{type(e).__name__}: {e}")
    return out


# every dtype the format has, in odd shapes, saved by torch, copied by dnnguard's writer
g = torch.Generator().manual_seed(5)
sd = collections.OrderedDict()
for dt in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
    sd["f." + str(dt).split(".")[1]] = (torch.randn(3, 1, 5, generator=g) * 1e3).to(dt)
for dt in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
    info = torch.iinfo(dt)
    sd["i." + str(dt).split(".")[1]] = torch.tensor([info.min, info.max, 0, 1, -1 if info.min < 0 else 2], dtype=dt)
sd["bool"] = torch.rand(7, generator=g) > 0.5
sd["scalar"] = torch.tensor(2.5)
sd["empty"] = torch.zeros(0, 4)
sd["eight.dims"] = torch.randn(1, 2, 1, 3, 1, 2, 1, 2, generator=g)
sd["big.int"] = torch.tensor([2**40, -2**40, 2**31, -2**31 - 1], dtype=torch.int64)
sd["ünïcode.weight"] = torch.randn(2, generator=g)
sd["fc.weight"] = torch.randn(300, 70000 // 300, generator=g)  # numel past BININT2
torch.save(sd, P("src.pt"))

r = tool("copy", P("src.pt"), P("out.pt"))
check(r.returncode == 0, f"dnnguard writes the state dict as out.pt {r.stderr.strip()}")
for wo, got in zip((True, False), loads(P("out.pt"))):
    check(same_dicts(got, sd), f"torch.load(weights_only={wo}) gives every tensor back bit for bit, in order "
          f"({got if isinstance(got, str) else len(got)})")

z = zipfile.ZipFile(P("out.pt"))
check(z.testzip() is None, "every entry's CRC-32 is right (zipfile.testzip)")
names = z.namelist()
check(names[0] == "archive/data.pkl" and all(n.startswith("archive/") for n in names)
      and z.read("archive/version") == b"3\n" and z.read("archive/byteorder") == b"little",
      f"torch's layout: archive/data.pkl first, byteorder, version 3 ({names[:3]}...)")
with open(P("out.pt"), "rb") as fh:
    blob = fh.read()
starts = {}
for info in z.infolist():
    n_len, x_len = struct.unpack("<HH", blob[info.header_offset + 26:info.header_offset + 30])
    starts[info.filename] = info.header_offset + 30 + n_len + x_len
data_starts = [s for n, s in starts.items() if n.startswith("archive/data/")]
check(len(data_starts) == len(sd) and all(s % 64 == 0 for s in data_starts),
      f"each of the {len(data_starts)} storages starts on 64 bytes, as torch aligns them")
check(all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist()), "every entry is stored, as torch's are")
meta = json.loads(z.read("archive/extra/dnnguard_metadata.json"))
check(meta.get("written_by") == "dnnguard" and meta.get("source") == "torch.save",
      f"the metadata travels in archive/extra/dnnguard_metadata.json: {meta}")

# the C reader reads it back: dump (float32 view) of out.pt equals that of src.pt, metadata added
a, b = P("a.txt"), P("b.txt")
ra, rb = tool("dump", P("src.pt"), a), tool("dump", P("out.pt"), b)
ta = [l for l in open(a).read().splitlines() if not l.startswith("M ")] if ra.returncode == 0 else None
tb_all = open(b).read().splitlines() if rb.returncode == 0 else []
tb = [l for l in tb_all if not l.startswith("M ")]
tensor_lines = lambda lines: [l.split()[:-2] if l.startswith("T ") else l for l in lines]  # drop byte offsets
check(ta is not None and tensor_lines(ta) == tensor_lines(tb), "the C reader reads out.pt as it reads src.pt")
hexs = lambda s: s.encode().hex()
check(f"M {hexs('written_by')} {hexs('dnnguard')}" in tb_all and f"M {hexs('source')} {hexs('torch.save')}" in tb_all,
      "and gets its metadata back (written_by from the record, source from the reader)")

# the same input gives the same bytes; a safetensors file becomes a .pth with its data and metadata
tool("copy", P("src.pt"), P("out2.pt"))
check(open(P("out2.pt"), "rb").read() == blob, "writing the same tensors twice gives the same bytes")
st = collections.OrderedDict((k, v) for k, v in sd.items() if v.dtype != torch.bfloat16)  # st_io has no BF16
st_io.write(P("s.safetensors"), st, {"net": "none", "seed": "1"})
r = tool("copy", P("s.safetensors"), P("s.pth"))
back = torch.load(P("s.pth"), weights_only=True) if r.returncode == 0 else {}
check(sorted(back) == sorted(st) and all(raw(back[k]) == raw(st[k]) for k in st),
      f"a safetensors file written as .pth gives every tensor's bytes back {r.stderr.strip()}")
pth_meta = json.loads(zipfile.ZipFile(P("s.pth")).read("archive/extra/dnnguard_metadata.json"))
check(pth_meta.get("net") == "none" and pth_meta.get("seed") == "1", f"the safetensors metadata travels: {pth_meta}")

# train --out m.pt: the weights of --out m.safetensors; torch's nets load them strictly
common = ["train", "--net", "lenet5", "--data", MNIST, "--subset", "600", "--epochs", "2", "--batch", "100",
          "--seed", "4", "--eval-every", "0", "--save-epochs", "1"]
r1 = run(*common, "--out", P("m.safetensors"))
r2 = run(*common, "--out", P("m.pt"))
if check(r1.returncode == 0 and r2.returncode == 0, f"train LeNet-5 twice (exit {r1.returncode}, {r2.returncode})"):
    ref = st_io.read(P("m.safetensors"))
    got = torch.load(P("m.pt"), weights_only=True)
    check(list(got) == list(ref) and all(np.array_equal(got[k].numpy(), np.asarray(ref[k])) for k in ref),
          "train --out m.pt writes the weights of --out m.safetensors bit for bit")
    net = torch_nets.build("lenet5", 10)
    net.load_state_dict(got, strict=True)
    x = torch.randn(4, 1, 28, 28, generator=g)
    check(torch.isfinite(net(x)).all().item(), "torch's LeNet-5 loads it with strict=True and runs")
    snap = torch.load(P("m.epoch1.pt"), weights_only=True) if os.path.exists(P("m.epoch1.pt")) else None
    check(snap is not None and list(snap) == list(ref), "--save-epochs 1 writes m.epoch1.pt in the same format")
    check(os.path.exists(P("m.pt.ckpt.safetensors")) and not os.path.exists(P("m.ckpt.pt")),
          "the checkpoint stays safetensors (m.pt.ckpt.safetensors)")
    ev = ["eval", "--net", "lenet5", "--data", MNIST, "--split", "test", "--limit", "1000"]
    e1, e2 = parse(run(*ev, "--model", P("m.safetensors")).stdout), parse(run(*ev, "--model", P("m.pt")).stdout)
    check(e1.get("accuracy") is not None and all(e1[k] == e2.get(k) for k in e1 if k != "model"),
          f"eval of m.pt reports what eval of m.safetensors does (accuracy {e2.get('accuracy')}, loss {e2.get('loss')})")
    r = run("attack", "prune", "--model", P("m.pt"), "--rate", "0.3", "--out", P("p.pt"))
    pm = json.loads(zipfile.ZipFile(P("p.pt")).read("archive/extra/dnnguard_metadata.json")) if r.returncode == 0 else {}
    pr = torch.load(P("p.pt"), weights_only=True) if r.returncode == 0 else {}
    frac = (pr["fc1.weight"] == 0).float().mean().item() if pr else 0
    check(pm.get("attack") == "prune" and pm.get("prune_rate") == "0.3" and abs(frac - 0.3) < 0.01,
          f"attack prune .pt → .pt: the attack's metadata and {frac:.3f} of fc1 zeroed")

r = run("train", "--net", "resnet18-cifar", "--data", "synthetic:3,32,32,10,64", "--epochs", "1", "--batch", "32",
        "--seed", "2", "--eval-every", "0", "--out", P("r.pth"))
if check(r.returncode == 0, f"train resnet18-cifar one epoch of synthetic data (exit {r.returncode})"):
    net = torch_nets.build("resnet18-cifar", 10)
    try:
        net.load_state_dict(torch.load(P("r.pth"), weights_only=True), strict=True)
        ok = True
    except Exception as e:  # noqa: BLE001
        ok = e
    check(ok is True, f"torchvision's resnet18 (CIFAR stem) loads r.pth with strict=True, batch norm included ({ok})")

# a damaged metadata entry: refused with one line, as a damaged safetensors __metadata__ is
def with_meta(path, text, compress=False):
    with zipfile.ZipFile(P("out.pt")) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            if info.filename != "archive/extra/dnnguard_metadata.json":
                dst.writestr(info, src.read(info))
        dst.writestr("archive/extra/dnnguard_metadata.json", text,
                     compress_type=zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED)


for name, text, compress, says in (("list", "[1, 2]", False, "not an object"),
                                   ("number", '{"a": 1}', False, "not a string"),
                                   ("twice", '{"a": "1", "a": "2"}', False, "'a' twice"),
                                   ("trailing", '{"a": "1"} x', False, "not one JSON value"),
                                   ("utf8", b'{"a": "\xff"}', False, "UTF-8"),
                                   ("deflated", '{"a": "1"}', True, "compressed")):
    with_meta(P(f"bad-{name}.pt"), text, compress)
    expect_bad(["info", "--model", P(f"bad-{name}.pt")], says, f"metadata entry {name}")
with_meta(P("fine.pt"), '{"a": "1", "source": "forged", "torch_entry": "forged", "torch_stripped_prefix": "forged"}')
r = run("info", "--model", P("fine.pt"))
check(r.returncode == 0 and "metadata a = 1" in r.stdout and "metadata source = torch.save" in r.stdout
      and "forged" not in r.stdout, "what a record says of the reader's own keys (source, torch_entry, ...) is dropped")

# what torch.save's format cannot hold without zip64 or int64 strides: refused, not written wrong
many = collections.OrderedDict((f"t{i}", np.zeros(1, np.float32)) for i in range(65531))
st_io.write(P("many.safetensors"), many)
r = tool("copy", P("many.safetensors"), P("many.pt"))  # 65531 tensors + 4 records: 65535 entries
check(r.returncode != 0 and "more than 65530 tensors needs zip64" in r.stderr and not os.path.exists(P("many.pt")),
      f"65531 tensors with metadata (65535 zip entries, the zip64 mark) refused: {r.stderr.strip()}")
del many["t0"]
st_io.write(P("many.safetensors"), many)
r = tool("copy", P("many.safetensors"), P("many.pt"))
got = run("info", "--model", P("many.pt"), "--json") if r.returncode == 0 else None
check(got is not None and got.returncode == 0 and len(torch.load(P("many.pt"), weights_only=True)) == 65530,
      "65530 tensors with metadata (65534 entries) are written, and both readers read them")
head = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                   "x": {"dtype": "F32", "shape": [1, 2**40, 2**40, 0], "data_offsets": [8, 8]}}).encode()
with open(P("wide.safetensors"), "wb") as fh:  # numpy will not make such an array, even empty
    fh.write(struct.pack("<Q", len(head)) + head + bytes(8))
r = tool("copy", P("wide.safetensors"), P("wide.pt"))
check(r.returncode != 0 and "strides overflow" in r.stderr and not os.path.exists(P("wide.pt")),
      f"an empty tensor whose strides overflow int64 refused: {r.stderr.strip()}")

# writing where it cannot: one line, exit 2, nothing left behind
expect_bad(["attack", "prune", "--model", P("m.pt"), "--rate", "0.1", "--out", P("no/such/dir/p.pt")], "p.pt",
           "a .pt output in a folder that does not exist")
check(not [f for f in os.listdir(tmp) if ".tmp." in f], "no temporary file is left")

shutil.rmtree(tmp, ignore_errors=True)
done()
