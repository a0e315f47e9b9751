"""tests/test_pt_torch.py — host/torch_pt.c against PyTorch: files written by torch.save here (state
dicts in every dtype, strided, offset, stride-0, empty and 0-dim tensors, shared storages,
nn.Parameters, pickle protocols 2 and 4, checkpoint dicts, DataParallel's "module." prefix) are read
by the C reader (tests/tool_safetensors.c dump) and must give torch's names, dtypes, shapes and
float32 values bit for bit; whole modules (torch.save(model), TorchScript archives) read as their
state_dict(); what is not a state dict (a module inside itself, the legacy format, a single tensor,
a dict without tensors or with two state dicts, a compressed or truncated archive) is refused with
one line and exit 2 by `dnnguard info`; and a LeNet-5 trained by dnnguard, saved by torch as .pt
(bare, wrapped in a checkpoint, under "module.", as a whole module, as TorchScript), evaluates
exactly as its safetensors file does. Touches only a temp dir."""
import argparse
import collections
import copy as copy_module
import os
import pickletools
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from typing import Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_check import CIFAR, DNNGUARD, MNIST, check, done, expect_bad, parse, run  # noqa: E402
import numpy as np  # noqa: E402
import st_io  # noqa: E402
import torch  # noqa: E402

TOOL = os.environ.get("DG_TOOL_SAFETENSORS", "./tool_safetensors")
NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
         torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
         torch.bool: "BOOL"}
tmp = tempfile.mkdtemp(prefix="dg-pt-")
P = lambda name: os.path.join(tmp, name)


def dump(path):
    """{name: (dtype, shape, float32 bits)} and {meta key: value} as the C reader sees path, or the error."""
    out = P("dump.txt")
    r = subprocess.run([TOOL, "dump", path, out], capture_output=True, text=True)
    if r.returncode != 0:
        return None, None, r.stderr.strip()
    tensors, meta = {}, {}
    lines = open(out).read().split("\n")
    unhex = lambda s: "" if s == "-" else bytes.fromhex(s).decode()
    i = 0
    while i < len(lines):
        f = lines[i].split()
        if f and f[0] == "M":
            meta[unhex(f[1])] = unhex(f[2])
        elif f and f[0] == "T":
            ndim = int(f[3])
            shape = tuple(int(x) for x in f[4:4 + ndim])
            i += 1
            bits = [int(x, 16) for x in lines[i].split()]
            tensors[unhex(f[1])] = (f[2], shape, np.array(bits, dtype=np.uint32))
        i += 1
    return tensors, meta, ""


def expect(sd):
    """torch's view of sd as dump() gives it"""
    return {k: (NAMES[v.dtype], tuple(v.shape), v.detach().float().contiguous().reshape(-1).numpy().view(np.uint32))
            for k, v in sd.items()}


def same(got, want):
    if got is None or set(got) != set(want):
        return False
    return all(got[k][0] == want[k][0] and got[k][1] == want[k][1] and np.array_equal(got[k][2], want[k][2])
               for k in want)


g = torch.Generator().manual_seed(3)
sd = collections.OrderedDict()
for dt in NAMES:
    if dt.is_floating_point:
        sd["t_" + NAMES[dt]] = (torch.randn(2, 3, generator=g) * 100).to(dt)
    elif dt == torch.bool:
        sd["t_BOOL"] = torch.rand(5, generator=g) > 0.5
    else:
        info = torch.iinfo(dt)
        sd["t_" + NAMES[dt]] = torch.tensor([info.min, -1, 0, 1, info.max], dtype=dt)
big = torch.randn(6, 5, generator=g)
sd["transposed"] = big.t()
sd["sliced"] = big[2:5, 1:4]          # offset and row stride 5
sd["every_other"] = big[::2, ::3]
sd["expanded"] = torch.randn(3, 1, generator=g).expand(3, 7)
sd["empty"] = torch.zeros(0, 3)
sd["scalar"] = torch.tensor(2.5)
sd["count"] = torch.tensor(12345678901, dtype=torch.int64)
sd["shared_a"] = big[0]              # two tensors on big's storage
sd["conv.weight"] = torch.randn(4, 3, 5, 5, generator=g)  # alone on its storage: read in place
tied = torch.randn(3, 3, generator=g)
sd["tied_a"], sd["tied_b"] = tied, tied                   # one storage, two names: copied apart
want = expect(sd)
for proto in (2, 4):
    path = P(f"all-{proto}.pt")
    torch.save(sd, path, pickle_protocol=proto)
    got, meta, err = dump(path)
    check(same(got, want) and meta.get("source") == "torch.save",
          f"protocol {proto}: {len(want)} tensors in every dtype, strided, offset, stride-0, empty, 0-dim: names, "
          f"dtypes, shapes, values bit for bit {err}")
    check(got is not None and list(got) == list(sd), f"protocol {proto}: the pickle's order is kept")



def rezip64(src, dst):
    """src's entries again, every size and offset in zip64 fields (0xFFFFFFFF in the 32-bit ones)
    and the end record saturated, as a writer does for files over 4 GiB"""
    out, central = bytearray(), bytearray()
    with zipfile.ZipFile(src) as z:
        items = [(i.filename.encode(), z.read(i.filename)) for i in z.infolist()]
    for name, data in items:
        offset, crc = len(out), zlib.crc32(data)
        out += struct.pack("<IHHHHHIIIHH", 0x04034b50, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(name), 20)
        out += name + struct.pack("<HHQQ", 1, 16, len(data), len(data)) + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 45, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                               len(name), 28, 0, 0, 0, 0, 0xFFFFFFFF)
        central += name + struct.pack("<HHQQQ", 1, 24, len(data), len(data), offset)
    cd_off = len(out)
    out += central
    z64 = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064b50, 44, 45, 45, 0, 0, len(items), len(items), len(central), cd_off)
    out += struct.pack("<IIQI", 0x07064b50, 0, z64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    open(dst, "wb").write(bytes(out))


rezip64(P("all-2.pt"), P("zip64.pt"))
with zipfile.ZipFile(P("zip64.pt")) as z:
    python_reads = z.testzip() is None
got, meta, err = dump(P("zip64.pt"))
check(python_reads and same(got, want), f"zip64 fields throughout (Python's zipfile reads the file too) {err}")

# nn.Parameters, a model's own state dict (batch norm's num_batches_tracked), DataParallel's prefix
net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(), torch.nn.Linear(4, 2))
params = dict(net.named_parameters())
torch.save(params, P("params.pt"))
got, meta, err = dump(P("params.pt"))
check(same(got, expect(params)), f"a dict of nn.Parameters {err}")
dp = collections.OrderedDict(("module." + k, v) for k, v in net.state_dict().items())
torch.save(dp, P("dp.pt"))
got, meta, err = dump(P("dp.pt"))
check(same(got, expect(net.state_dict())) and meta.get("torch_stripped_prefix") == "module.",
      f"DataParallel's 'module.' on every name is removed and recorded {meta} {err}")
mixed = collections.OrderedDict(dp)
mixed["head.bias"] = torch.zeros(2)
torch.save(mixed, P("mixed.pt"))
got, meta, err = dump(P("mixed.pt"))
check(same(got, expect(mixed)) and "torch_stripped_prefix" not in meta,
      "a prefix that not every name has is kept")

# whole modules: torch.save(model) and torch.jit.save read as model.state_dict() names them: no
# parameter that is None, no non-persistent buffer, submodules in order, at protocols 2 and 4, in
# half precision, under DataParallel, inside a checkpoint dict (as YOLOv5 saves its model)


class Odd(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4), torch.nn.ReLU())
        self.head = torch.nn.Linear(4, 2)
        self.tied = self.head  # one module under two names: state_dict lists both
        self.register_buffer("scale", torch.tensor([0.5, 2.0]))
        self.register_buffer("cache", torch.ones(3), persistent=False)
        self.register_parameter("unused", None)

    def forward(self, x):
        return self.tied(self.body(x).mean((2, 3))) * self.scale


odd = Odd()
odd(torch.randn(2, 3, 5, 5)).sum().backward()  # batch norm's running statistics move off their start
odd.body[1].num_batches_tracked += 4
cases = [("whole.pt", odd, {}), ("whole4.pt", odd, {"pickle_protocol": 4}),
         ("whole-dp.pt", torch.nn.DataParallel(odd), {}), ("whole-half.pt", Odd().half(), {})]
for name, obj, kw in cases:
    torch.save(obj, P(name), **kw)
    got, meta, err = dump(P(name))
    want = (obj.module if isinstance(obj, torch.nn.DataParallel) else obj).state_dict()
    cls = type(obj).__module__ + "." + type(obj).__name__
    check(same(got, expect(want)) and list(got) == list(want) and meta.get("torch_module") == cls
          and meta.get("source") == "torch.save" and ("module." in meta.get("torch_stripped_prefix", "")) == (obj is not odd
                                                                                                   and "dp" in name),
          f"{name}: torch.save(model) reads as model.state_dict() ({len(want)} tensors, {meta}) {err}")
torch.save({"epoch": 3, "model": odd, "optimizer": None, "best_fitness": torch.tensor(0.5)}, P("yolo.pt"))
got, meta, err = dump(P("yolo.pt"))
check(same(got, expect(odd.state_dict())) and meta.get("torch_entry") == "model",
      f"a checkpoint whose entry 'model' is a whole module {meta} {err}")
for name, scripted in (("script.pt", torch.jit.script(odd)), ("traced.pt", torch.jit.trace(odd, torch.randn(1, 3, 5, 5)))):
    torch.jit.save(scripted, P(name))
    got, meta, err = dump(P(name))
    check(same(got, expect(scripted.state_dict())) and meta.get("source") == "torch.jit.save"
          and set(got) == set(odd.state_dict()) | {"cache"},
          f"{name}: a TorchScript archive reads as the scripted module's state dict, and its non-persistent buffer "
          f"'cache' too (TorchScript keeps no mark of it) {sorted(got or [])} {err}")


class Extras(torch.nn.Module):  # tensors that torch's state_dict() leaves out of a scripted module
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)
        self.plain = torch.zeros(4)  # an attribute, neither parameter nor buffer
        self.holder = Holder(torch.ones(2))  # an object of a script class

    def forward(self, x):
        return self.lin(x) + self.plain.sum() + self.holder.t.sum()


@torch.jit.script
class Holder:
    def __init__(self, t: torch.Tensor):
        self.t = t


torch.jit.save(torch.jit.script(Extras()), P("script-extras.pt"))
loaded = torch.jit.load(P("script-extras.pt"))
got, meta, err = dump(P("script-extras.pt"))
check(same(got, expect(loaded.state_dict())) and set(got or []) == {"lin.weight", "lin.bias"},
      f"TorchScript: a plain tensor attribute and a script class's tensor are not parameters (the archive's code "
      f"says which are) {sorted(got or [])} {err}")


class Declared(torch.nn.Module):  # torch.jit's state_dict() follows the declared types and slots
    mask: torch.jit.Final[int] = 3
    opt: Optional[torch.Tensor]

    def __init__(self):
        super().__init__()
        self.register_buffer("opt", torch.ones(2))  # declared Optional[Tensor]: not in state_dict()
        self.blocks = torch.nn.ModuleDict({"block1-0": torch.nn.Linear(2, 2), "b": torch.nn.Linear(2, 1)})
        for i in range(1000):  # many parameters: looked up by sorted name, not by scanning
            self.register_parameter(f"p{i}", torch.nn.Parameter(torch.full((1,), float(i))))
        self.register_parameter("a_late", torch.nn.Parameter(torch.zeros(1)))

    def forward(self, x):
        return self.blocks["block1-0"](x).sum() + self.p0


torch.jit.save(torch.jit.script(Declared()), P("script-declared.pt"))
want = torch.jit.load(P("script-declared.pt")).state_dict()
got, meta, err = dump(P("script-declared.pt"))
check(same(got, expect(want)) and list(got or []) == list(want) and "opt" not in (got or {}),
      f"TorchScript: an Optional[Tensor] buffer left out, a submodule named 'block1-0', 1001 parameters, in "
      f"torch's order ({len(want)} tensors) {err}")
torch.save({"model": odd, "state_dict": odd.state_dict(), "epoch": 2}, P("both.pt"))
got, meta, err = dump(P("both.pt"))
check(same(got, expect(odd.state_dict())) and meta.get("torch_entry") == "state_dict",
      f"a checkpoint with a whole module and a state dict: the state dict {meta} {err}")
torch.save({"model": odd, "ema": Odd()}, P("model-ema.pt"))
torch.save({**odd.state_dict(), "model": odd}, P("top-and-module.pt"))  # a module's weights at the top level too
torch.save({"model": odd, "ema": Odd().state_dict()}, P("model-ema-sd.pt"))  # an EMA copy's state dict beside the model
torch.save({"model": odd, "weights": odd.state_dict()}, P("model-own-sd.pt"))
got, meta, err = dump(P("model-own-sd.pt"))
check(same(got, expect(odd.state_dict())) and meta.get("torch_entry") == "weights",
      f"a whole module beside its own state dict (the same tensors, under any key): the state dict {meta} {err}")
# a copy of the module's state dict (clone, deepcopy: other storages, the same values) is the same weights
# (2-d ones stored transposed: the same values through other strides)
cloned = {k: v.t().contiguous().t() if v.dim() == 2 else v.clone() for k, v in odd.state_dict().items()}
assert any(v.dim() == 2 for v in cloned.values())
torch.save({"model": odd, "weights": cloned}, P("model-copy-sd.pt"))
got, meta, err = dump(P("model-copy-sd.pt"))
check(same(got, expect(odd.state_dict())) and meta.get("torch_entry") == "weights",
      f"a whole module beside a copy of its state dict (other storages, equal values): read, not refused {meta} {err}")
copy = {k: v.clone() for k, v in odd.state_dict().items()}
first = next(k for k, v in copy.items() if v.is_floating_point() and v.numel())
copy[first].view(-1)[-1] = torch.nextafter(copy[first].view(-1)[-1], torch.tensor(float("inf")))
torch.save({"model": odd, "ema": copy}, P("model-near-sd.pt"))  # one element one ulp off: other weights
# a checkpoint's dict of 0-d metrics beside the weights is passed over, as its other values are
for name, ckpt, key in (("metrics.pt", {"state_dict": odd.state_dict(), "metrics": {"acc": torch.tensor(0.9)}}, "state_dict"),
                        ("stats.pt", {"stats": {"loss": torch.tensor(1.0)}, "model": odd.state_dict()}, "model"),
                        ("module-metrics.pt", {"model": odd, "metrics": {"acc": torch.tensor(0.9)}}, "model"),
                        # stray 1-d tensors at the top level (an RNG state, a normalisation, a loss history)
                        # share no name with the weights: passed over, not taken for a second model
                        ("rng.pt", {"state_dict": odd.state_dict(), "epoch": 3, "rng_state": torch.get_rng_state()},
                         "state_dict"),
                        ("norm.pt", {"model": odd.state_dict(), "mean": torch.tensor([0.1307]),
                                     "losses": torch.tensor([2.3, 1.1])}, "model"),
                        ("module-rng.pt", {"model": odd, "rng_state": torch.get_rng_state()}, "model")):
    torch.save(ckpt, P(name))
    got, meta, err = dump(P(name))
    check(same(got, expect(odd.state_dict())) and meta.get("torch_entry") == key,
          f"{name}: the weights in '{key}', not the tensors beside them {meta} {err}")
torch.save({"epoch": 3, "metrics": {"acc": torch.tensor(0.9)}}, P("metrics-only.pt"))
# torch.load copies BUILD's state into the object: changing that dict afterwards (through the memo)
# does not change the module, so it must not change what dnnguard reads either
base = torch.nn.Linear(2, 2)
torch.save({"model": base, "aux": [{"weight": torch.full((2, 2), 7.0), "bias": torch.full((2,), 7.0)}]}, P("memo-base.pt"))
with zipfile.ZipFile(P("memo-base.pt")) as z:
    names = z.namelist()
    pkl_name = next(n for n in names if n.endswith("data.pkl"))
    pkl, ops = z.read(pkl_name), list(pickletools.genops(z.read(pkl_name)))
    at = next(i for i, (op, arg, _) in enumerate(ops) if op.name == "GLOBAL" and arg.endswith(" Linear"))
    state_memo = next(ops[j + 1][1] for j in range(at, len(ops)) if ops[j][0].name == "EMPTY_DICT")
    fake_memo = ops[max(j for j, (op, _, _) in enumerate(ops) if op.name == "EMPTY_DICT") + 1][1]
    patch = b"h" + bytes([state_memo]) + b"X\x0b\0\0\0_parameters" + b"h" + bytes([fake_memo]) + b"s0"
    with zipfile.ZipFile(P("memo-mut.pt"), "w", zipfile.ZIP_STORED) as out:
        for n in names:
            out.writestr(n, pkl[:-1] + patch + b"." if n == pkl_name else z.read(n))
got, meta, err = dump(P("memo-mut.pt"))
check(same(got, expect(torch.load(P("memo-mut.pt"))["model"].state_dict())),
      f"a module's __dict__ changed after its BUILD reads as torch.load's module, not as the changed dict {err}")
cyclic = torch.nn.Sequential(torch.nn.Linear(2, 2))
cyclic._modules["again"] = cyclic  # state_dict() would recurse for ever; torch.save keeps the cycle
torch.save(cyclic, P("cyclic.pt"))
wide = torch.nn.Linear(1, 1)
for _ in range(40):  # 40 levels, each holding the next twice: 2^40 names for state_dict()
    level = torch.nn.Module()
    level._modules["a"] = level._modules["b"] = wide
    wide = level
torch.save(wide, P("wide.pt"))


class Bare:  # a module's __dict__ without nn.Module's code, for files of pathological size
    pass


def bare(params=None, bufs=None, mods=None, skip=None, pad=0):
    b = Bare()
    b.__dict__.update(_parameters=params or {}, _buffers=bufs or {}, _modules=mods or {})
    if skip is not None:
        b.__dict__["_non_persistent_buffers_set"] = skip
    b.__dict__.update({f"p{i}": 0 for i in range(pad)})
    return b


for name, leaf in (("dag-set.pt", bare(bufs={f"b{i}": torch.zeros(1) for i in range(1000)}, skip={f"b{i}" for i in range(1000)})),
                   ("dag-pad.pt", bare(params={"w": None}, pad=20000))):
    for _ in range(40):  # a 40-level DAG over a leaf that is slow to read: 2^40 visits of it
        leaf = bare(mods={"a": leaf, "b": leaf})
    torch.save(leaf, P(name))
opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
net(torch.randn(2, 3, 3, 3)).sum().backward()
opt.step()
torch.save({"epoch": 4, "state_dict": net.state_dict(), "optimizer": opt.state_dict(), "best": 0.5}, P("ckpt.pt"))
got, meta, err = dump(P("ckpt.pt"))
check(same(got, expect(net.state_dict())) and meta.get("torch_entry") == "state_dict",
      f"a checkpoint dict: the one entry that holds tensors, named in the metadata {meta} {err}")
# pytorch/examples' ImageNet checkpoint: a tensor beside the state dict, and objects of other classes
torch.save({"epoch": 90, "arch": "resnet18", "state_dict": net.state_dict(), "best_acc1": torch.tensor(71.5),
            "args": argparse.Namespace(lr=0.1, arch="resnet18"), "np": np.float64(0.5)}, P("imagenet.pt"))
got, meta, err = dump(P("imagenet.pt"))
check(same(got, expect(net.state_dict())) and meta.get("torch_entry") == "state_dict",
      f"a checkpoint with a tensor at the top and an argparse.Namespace and a numpy scalar beside the state dict: "
      f"the state dict {err}")
torch.save({"w": torch.ones(2), "extra": argparse.Namespace(a=1)}, P("object-inside.pt"))

# refusals (checked below with the hand-made ones): one line, exit 2
torch.save(sd, P("legacy.pt"), _use_new_zipfile_serialization=False)
torch.save(sd, P("legacy1.pt"), _use_new_zipfile_serialization=False, pickle_protocol=1)
torch.save(net.state_dict(), P("proto1.pt"), pickle_protocol=1)
torch.save(net.state_dict(), P("proto0.pt"), pickle_protocol=0)
torch.save(big, P("tensor.pt"))
torch.save({"epoch": 3, "name": "x"}, P("notensors.pt"))
torch.save({"model": net.state_dict(), "ema": net.state_dict()}, P("two.pt"))
top = dict(net.state_dict())
top["ema"] = {k: v + 1 for k, v in net.state_dict().items()}  # the model's weights at the top, its EMA in an entry
torch.save(top, P("top-and-ema.pt"))
top_part = dict(net.state_dict())
top_part["teacher"] = {"3.bias": net.state_dict()["3.bias"]}
torch.save(top_part, P("top-and-part.pt"))
with zipfile.ZipFile(P("all-2.pt")) as src, zipfile.ZipFile(P("deflated.pt"), "w", zipfile.ZIP_DEFLATED) as dst:
    for item in src.infolist():
        dst.writestr(item.filename, src.read(item.filename))
raw = open(P("all-2.pt"), "rb").read()
open(P("truncated.pt"), "wb").write(raw[: len(raw) // 2])
refusals = [
    ("cyclic.pt", "64 deep", "a module inside itself"),
    ("wide.pt", "size allows", "2^40 paths through 41 modules, refused at once"),
    ("dag-set.pt", "size allows", "a DAG over a leaf of 1000 non-persistent buffers (each looked up in the set)"),
    ("dag-pad.pt", "size allows", "a DAG over a leaf of 20000 attributes"),
    ("model-ema.pt", "several entries that hold whole modules ('model', 'ema')", "a checkpoint with a model and its EMA copy"),
    ("model-ema-sd.pt", "entries 'model' (a whole module) and 'ema' (a state dict) hold different weights",
     "a checkpoint with a model and its EMA copy's state dict"),
    ("model-near-sd.pt", "entries 'model' (a whole module) and 'ema' (a state dict) hold different weights",
     "a module beside a copy of its state dict with one element one ulp off"),
    ("metrics-only.pt", "its entry 'metrics' holds 0-d tensors only", "a checkpoint whose only tensors are metrics"),
    ("proto1.pt", "pickle protocol 0 or 1 is not read (save with torch.save's default protocol 2", "pickle protocol 1"),
    ("proto0.pt", "pickle protocol 0 or 1 is not read", "pickle protocol 0"),
    ("legacy1.pt", "in the legacy format", "the legacy format at pickle protocol 1"),
    ("legacy.pt", "in the legacy format", "the legacy (pre-1.6) format"),
    ("tensor.pt", "single tensor", "a single tensor"),
    ("notensors.pt", "no tensors", "a dict without tensors"),
    ("two.pt", "several entries that hold tensors ('model', 'ema')", "a checkpoint with two state dicts"),
    ("top-and-ema.pt", "holds weights itself and, under the same names, in its entry 'ema'",
     "a state dict at the top level beside an EMA copy in an entry (the entry was taken, silently)"),
    ("top-and-module.pt", "in its entry 'model' (a whole module)", "a state dict beside a whole module"),
    ("top-and-part.pt", "holds weights itself and, under the same names, in its entry 'teacher'",
     "a state dict beside a partial one"),
    ("deflated.pt", "compressed", "a compressed archive"),
    ("truncated.pt", P("truncated.pt"), "a truncated archive"),
    ("object-inside.pt", "argparse.Namespace", "an object among the weights"),
]

# hand-made pickles of what torch.save never writes but torch.load reads otherwise than a naive
# reader would: the reader must agree with torch.load or refuse


def pstr(x):
    b = x.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def pglobal(mod, name):
    return b"c" + mod.encode() + b"\n" + name.encode() + b"\n"


def pint(n):
    return b"J" + struct.pack("<i", n)


def ptuple(*parts):
    return b"(" + b"".join(parts) + b"t"


def ptensor(key, typ="FloatStorage", numel=2, size=(2,), stride=(1,)):
    pid = ptuple(pstr("storage"), pglobal("torch", typ), pstr(key), pstr("cpu"), pint(numel))
    return (pglobal("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + b"Q" + pint(0) +
            ptuple(*[pint(x) for x in size]) + ptuple(*[pint(x) for x in stride]) + b"\x89" +
            pglobal("collections", "OrderedDict") + b")RtR")


def archive(path, pkl, storages, folder="archive"):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(folder + "/data.pkl", pkl)
        for k, v in storages.items():
            z.writestr(folder + "/data/" + k, v)
        z.writestr(folder + "/version", b"3\n")


two = {"0": struct.pack("<2f", 1, 1), "1": struct.pack("<2f", 2, 3)}
# MEMOIZE stores at the number of memo entries, not at the first free index
archive(P("memo.pt"), b"\x80\x04" + ptensor("0") + b"q\x01" + b"0" + ptensor("1") + b"\x94" + b"0" +
        b"}" + pstr("w") + b"h\x01s.", two)
t = torch.load(P("memo.pt"))
got, meta, err = dump(P("memo.pt"))
check(got is not None and same(got, expect(t)), f"MEMOIZE after BINPUT 1 gives torch.load's tensor {t} {err}")
archive(P("dupkey.pt"), b"\x80\x02}(" + pstr("w") + ptensor("0") + pstr("w") + b"Nu.", two)
# a whole module whose _parameters holds "w" twice (torch.load keeps the second, None: no "w")
archive(P("dupparam.pt"), b"\x80\x02" + pglobal("__main__", "M") + b")\x81}(" + pstr("_parameters") + b"}(" + pstr("w") +
        ptensor("0") + pstr("w") + b"Nu" + pstr("_modules") + b"}ub.", two)
archive(P("build.pt"), b"\x80\x02}" + pstr("w") + ptensor("0") + b"Nb" + b"s.", two)
archive(P("dtypes.pt"), b"\x80\x02}(" + pstr("a") + ptensor("0") + pstr("b") + ptensor("0", "IntStorage") + b"u.", two)
archive(P("numel.pt"), b"\x80\x02}" + pstr("w") + ptensor("0", numel=1) + b"s.", two)
archive(P("bomb.pt"), b"\x80\x02}" + pstr("w") + ptensor("0", size=(1 << 20, 1 << 20, 1024), stride=(0, 0, 0)) + b"s.",
        two)
archive(P("long.pt"), b"\x80\x02}" + pstr("w") + ptensor("0") + b"s.", two, folder="a" * 600)
torch.save(sd, P("legacy4.pt"), _use_new_zipfile_serialization=False, pickle_protocol=4)
for name, mention, what in refusals + [
    ("dupkey.pt", "twice", "a key given twice (torch.load keeps the last)"),
    ("dupparam.pt", "'w' twice", "a module's parameter given twice"),
    ("build.pt", "BUILD", "BUILD of a tensor (torch.load would set its contents)"),
    ("dtypes.pt", "two different types", "one storage referenced with two dtypes"),
    ("numel.pt", "another size", "a storage whose reference gives another size"),
    ("bomb.pt", "bomb", "a stride-0 tensor of 2^50 elements"),
    ("long.pt", "too long", "a 600-byte folder name"),
    ("legacy4.pt", "in the legacy format", "the legacy format at pickle protocol 4"),
]:
    expect_bad(["info", "--model", P(name)], mention, what)

# a batch norm's running_var below zero is no trained model's: refused at load, naming the tensor,
# from a .pt and a safetensors file alike; a negative running_mean is an ordinary one
import torch_nets  # noqa: E402
wrn = torch_nets.build("wrn-10-1", 10).state_dict()
var = next(k for k in wrn if k.endswith(".running_var"))
wrn[var.replace("running_var", "running_mean")][2] = -4.0
torch.save(wrn, P("bn-mean.pt"))
wrn[var][5] = -0.25
torch.save(wrn, P("bn-var.pt"))
st_io.write(P("bn-var.safetensors"), {k: v.numpy() for k, v in wrn.items()})
keygen = ["wm", "keygen", "--net", "wrn-10-1", "--layer", "conv1.weight", "--digits", "123", "--seed", "1"]
r = run(*keygen, "--model", P("bn-mean.pt"), "--out", P("bn-key.json"))
check(r.returncode == 0, f"a negative running_mean loads {r.stderr.strip()}")
for name in ("bn-var.pt", "bn-var.safetensors"):
    expect_bad([*keygen, "--model", P(name), "--out", P(name + ".json")],
               f"{P(name)}: tensor '{var}' holds a negative variance (-0.25 at index 5)", f"{name}: a negative running_var")

# end to end: dnnguard's LeNet-5, saved by torch as .pt, evaluates as its safetensors file does
r = run("train", "--net", "lenet5", "--data", MNIST, "--subset", "1000", "--epochs", "1", "--eval-every", "0",
        "--out", P("lenet.safetensors"))
if check(r.returncode == 0, f"train LeNet-5 {r.stderr[-200:]}"):
    weights = collections.OrderedDict((k, torch.from_numpy(np.array(v))) for k, v in st_io.read(P("lenet.safetensors")).items())
    torch.save(weights, P("lenet.pt"))
    torch.save({"epoch": 1, "model": weights}, P("lenet-ckpt.pth"))
    torch.save(collections.OrderedDict(("module." + k, v) for k, v in weights.items()), P("lenet-dp.pt"))
    lenet = torch_nets.build("lenet5", 10)
    lenet.load_state_dict(weights)
    torch.save(lenet, P("lenet-whole.pt"))
    torch.jit.save(torch.jit.script(lenet), P("lenet-script.pt"))
    ev = ["eval", "--net", "lenet5", "--data", MNIST, "--split", "test", "--limit", "2000"]
    ref = parse(run(*ev, "--model", P("lenet.safetensors")).stdout)
    for name in ("lenet.pt", "lenet-ckpt.pth", "lenet-dp.pt", "lenet-whole.pt", "lenet-script.pt"):
        r = run(*ev, "--model", P(name))
        e = parse(r.stdout)
        check(ref.get("accuracy") is not None and e.get("accuracy") == ref["accuracy"] and e.get("loss") == ref.get("loss"),
              f"eval of {name}: accuracy {e.get('accuracy')} and loss {e.get('loss')} as the safetensors file's "
              f"({ref.get('accuracy')}, {ref.get('loss')})")
        # a whole module's code and settings are not read: said, since a changed stride or eps would
        # still evaluate as the stock net
        whole = name in ("lenet-whole.pt", "lenet-script.pt")
        check(("a whole module" in r.stderr and "not checked" in r.stderr) == whole,
              f"eval of {name}: {'a' if whole else 'no'} note that the module's structure is not checked "
              f"{r.stderr.strip()!r}")

    # a prefix that every name carries (Lightning's "model.", a wrapper's "backbone.model."), in a
    # checkpoint or a safetensors file: read without it, said in a note; two sets of weights under
    # two prefixes (a model and its EMA copy) are refused, not guessed between
    torch.save({"state_dict": collections.OrderedDict(("model." + k, v) for k, v in weights.items()),
                "epoch": 1}, P("lenet-lightning.ckpt"))
    st_io.write(P("lenet-wrapped.safetensors"), {"backbone.model." + k: v.numpy() for k, v in weights.items()})
    # DataParallel around a Lightning module: torch_pt takes "module." off, the note names both
    torch.save(collections.OrderedDict(("module.model." + k, v) for k, v in weights.items()), P("lenet-dp-model.pt"))
    for name, prefix in (("lenet-lightning.ckpt", "model."), ("lenet-wrapped.safetensors", "backbone.model."),
                         ("lenet-dp-model.pt", "module.model.")):
        r = run(*ev, "--model", P(name))
        e = parse(r.stdout)
        check(e.get("accuracy") == ref.get("accuracy") and e.get("loss") == ref.get("loss")
              and f"read without the prefix '{prefix}'" in r.stderr,
              f"eval of {name} (every name under '{prefix}') equals the plain file's, with a note {r.stderr.strip()!r}")
    both = {**{"model." + k: v.numpy() for k, v in weights.items()}, **{"ema." + k: v.numpy() for k, v in weights.items()}}
    st_io.write(P("lenet-ema.safetensors"), both)
    expect_bad([*ev, "--model", P("lenet-ema.safetensors")], "unexpected tensor", "a model and its EMA copy under two prefixes")
    partial = {("model." + k if k.startswith("conv") else k): v.numpy() for k, v in weights.items()}
    st_io.write(P("lenet-partial.safetensors"), partial)
    expect_bad([*ev, "--model", P("lenet-partial.safetensors")], "unexpected tensor", "a prefix on some names only")
    r = run("attack", "permute", "--model", P("lenet-wrapped.safetensors"), "--net", "lenet5", "--layer", "conv1.weight",
            "--seed", "9", "--out", P("perm-wrapped.safetensors"))
    r2 = run("attack", "permute", "--model", P("lenet.safetensors"), "--net", "lenet5", "--layer", "conv1.weight",
             "--seed", "9", "--out", P("perm-plain.safetensors"))
    pw, pp = st_io.read(P("perm-wrapped.safetensors")), st_io.read(P("perm-plain.safetensors"))
    check(r.returncode == 0 and r2.returncode == 0 and sorted(pw) == sorted("backbone.model." + k for k in pp)
          and all(np.array_equal(pw["backbone.model." + k], v) for k, v in pp.items())
          and not np.array_equal(pp["conv1.weight"], weights["conv1.weight"].numpy()),
          "attack permute of the wrapped file permutes it as the plain one and keeps its names")

# kuangliu/pytorch-cifar's ResNet18 (shortcut, linear), saved as its training script does it
# ({"net": DataParallel's state dict, "acc", "epoch"}), is resnet18-cifar under other names: it is
# read so, with a note; its logits are PyTorch's own, its gradients those of the same weights under
# torchvision's names; attacks keep its names, so their output loads back into the PyTorch model
from test_nets_torch import nerr, randomize  # noqa: E402
kl = torch_nets.KuangliuResNet18(10)
randomize(kl, 5)
torch.save({"net": collections.OrderedDict(("module." + k, v) for k, v in kl.state_dict().items()), "acc": 93.4,
            "epoch": 199}, P("ckpt.pth"))
tv_names = lambda k: k.replace("shortcut", "downsample").replace("linear", "fc")
st_io.write(P("kl-torchvision.safetensors"), {tv_names(k): v.numpy() for k, v in kl.state_dict().items()})
grad = ["grad", "--net", "resnet18-cifar", "--data", CIFAR, "--batch", "4", "--seed", "2"]
r = run(*grad, "--model", P("ckpt.pth"), "--out", P("kl-grad.safetensors"))
r2 = run(*grad, "--model", P("kl-torchvision.safetensors"), "--out", P("tv-grad.safetensors"))
if check(r.returncode == 0 and r2.returncode == 0, f"grad on kuangliu's ResNet18 {r.stderr.strip()} {r2.stderr.strip()}"):
    check("names read without the prefix 'module.' and with 'shortcut' for 'downsample', 'linear' for 'fc'"
          in r.stderr and "note" not in r2.stderr, f"a note says how kuangliu's names were read {r.stderr.strip()!r}")
    g, g2 = st_io.read(P("kl-grad.safetensors")), st_io.read(P("tv-grad.safetensors"))
    check(sorted(g) == sorted(g2) and all(np.array_equal(g[k], g2[k]) for k in g),
          "kuangliu's file gives the logits and gradients of the same weights under torchvision's names, bit for bit")
    trained = copy_module.deepcopy(kl).train()  # batch statistics, as grad uses; kl's running ones stay as saved
    logits = trained(torch.from_numpy(g["input"].astype(np.float32))).detach().numpy()
    check(nerr(g["logits"], logits) <= 1e-4, f"logits as PyTorch's kuangliu ResNet18's (error {nerr(g['logits'], logits):.2e})")
half = {("fc" + k[6:] if k.startswith("linear") else k): v.numpy() for k, v in kl.state_dict().items()}
st_io.write(P("kl-half.safetensors"), half)
expect_bad([*grad, "--model", P("kl-half.safetensors"), "--out", P("half.safetensors")],
           "unexpected tensor 'fc.bias' for net resnet18-cifar (names read with 'shortcut' for 'downsample'",
           "kuangliu's names on some modules and torchvision's on others")
lacking = {k: v.numpy() for k, v in kl.state_dict().items() if k != "linear.weight"}
st_io.write(P("kl-lacking.safetensors"), lacking)
expect_bad([*grad, "--model", P("kl-lacking.safetensors"), "--out", P("lacking.safetensors")],
           "missing tensor 'fc.weight' ('linear.weight' in this file's names) for net resnet18-cifar",
           "kuangliu's file without linear.weight: named as the file would name it")
both = {**{k: v.numpy() for k, v in kl.state_dict().items()}, "fc.weight": np.full((10, 512), 7, np.float32),
        "fc.bias": np.full(10, 7, np.float32)}
st_io.write(P("kl-both.safetensors"), both)
expect_bad([*grad, "--model", P("kl-both.safetensors"), "--out", P("both.safetensors")],
           "unexpected tensor 'fc.bias' for net resnet18-cifar", "kuangliu's linear.* and torchvision's fc.* in one file")
r = run("attack", "permute", "--model", P("ckpt.pth"), "--net", "resnet18-cifar", "--layer", "layer2.0.conv1.weight",
        "--seed", "4", "--out", P("kl-perm.pt"))
if check(r.returncode == 0, f"attack permute of kuangliu's ResNet18 {r.stderr.strip()}"):
    permuted = torch_nets.KuangliuResNet18(10)
    permuted.load_state_dict(torch.load(P("kl-perm.pt")), strict=True)
    kl.eval(), permuted.eval()
    x = torch.from_numpy(np.random.default_rng(3).standard_normal((2, 3, 32, 32)).astype(np.float32))
    same = nerr(permuted(x).detach().numpy(), kl(x).detach().numpy())
    moved = not torch.equal(permuted.layer2[0].conv1.weight, kl.layer2[0].conv1.weight)
    check(same <= 1e-5 and moved, f"its permuted copy loads into the PyTorch model by its own names and computes the "
          f"same function (error {same:.2e}, weights moved: {moved})")

shutil.rmtree(tmp, ignore_errors=True)
done()
