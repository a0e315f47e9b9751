"""tests/test_safetensors_torch.py — host/safetensors against PyTorch: files written here (by hand:
struct + json + torch bytes; no safetensors package) in every dtype are read by a small C driver
built from host/safetensors.c, and files the C writer makes are parsed here, strictly, as the
reference implementation would. Touches only a temp dir."""
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import torch



DTYPES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64", torch.int64: "I64",
    torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}
FROM_NAME = {v: k for k, v in DTYPES.items()}

passed = 0
failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what, file=sys.stderr)


def raw_bytes(t):
    t = t.contiguous().reshape(-1)
    if t.numel() == 0:
        return b""
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    return t.view(torch.uint8).numpy().tobytes()


def write_st(path, tensors, metadata=None, order=None, indent=None, lead=b""):
    """Hand-made writer (the reference's layout: offsets in `order`, header padded with spaces, and
    `lead` whitespace before it, which the reference reader also reads)."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    data = b""
    names = order or list(tensors)
    for name in names:
        b = raw_bytes(tensors[name])
        header[name] = {"dtype": DTYPES[tensors[name].dtype], "shape": list(tensors[name].shape),
                        "data_offsets": [len(data), len(data) + len(b)]}
        data += b
    # header keys in the given dict order, which may differ from the data order
    hdr = {"__metadata__": header["__metadata__"]} if metadata is not None else {}
    for name in tensors:
        hdr[name] = header[name]
    text = lead + json.dumps(hdr, separators=(",", ":") if indent is None else None, indent=indent,
                             ensure_ascii=False).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def read_st_strict(path):
    """Parse as the reference implementation does, and fail on anything it would reject."""
    blob = open(path, "rb").read()
    (n,) = struct.unpack("<Q", blob[:8])
    text = blob[8:8 + n]
    check(n % 8 == 0, f"{path}: header length {n} not a multiple of 8")
    stripped = text.rstrip(b" ")
    check(stripped.endswith(b"}") and b"\n" not in stripped, f"{path}: header not one compact object")
    header = json.loads(text.decode("utf-8"))
    data = blob[8 + n:]
    meta = header.pop("__metadata__", None)
    if meta is not None:
        check(all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()), "metadata not all strings")
    out = {}
    end = 0
    for name, info in header.items():  # the C writer keeps offsets in header order, contiguous
        b, e = info["data_offsets"]
        check(b == end, f"{name}: offsets not contiguous ({b} after {end})")
        end = e
        dt = FROM_NAME[info["dtype"]]
        shape = info["shape"]
        numel = math.prod(shape) if shape else 1
        esize = torch.empty(0, dtype=dt).element_size()
        check(e - b == numel * esize, f"{name}: byte count")
        if numel == 0:
            t = torch.empty(shape, dtype=dt)
        elif dt == torch.bool:
            t = torch.frombuffer(bytearray(data[b:e]), dtype=torch.uint8).to(torch.bool).reshape(shape)
        else:
            t = torch.frombuffer(bytearray(data[b:e]), dtype=dt).reshape(shape)
        out[name] = t
    check(end == len(data), f"{path}: data holds {len(data)} bytes, tensors cover {end}")
    return out, meta or {}


def unhex(s):
    return "" if s == "-" else bytes.fromhex(s).decode("utf-8")


def run_driver(driver, *args):
    return subprocess.run([driver, *args], capture_output=True, text=True)


def dump(driver, path, tmp):
    out = os.path.join(tmp, "dump.txt")
    r = run_driver(driver, "dump", path, out)
    if r.returncode != 0:
        return None, r.stderr
    tensors, meta = {}, {}
    lines = open(out).read().split("\n")
    i = 0
    while i < len(lines):
        ln = lines[i]
        if ln.startswith("M "):
            _, k, v = ln.split(" ")
            meta[unhex(k)] = unhex(v)
        elif ln.startswith("T "):
            parts = ln.split(" ")
            name, dtype, ndim = unhex(parts[1]), parts[2], int(parts[3])
            shape = [int(x) for x in parts[4:4 + ndim]]
            numel = int(parts[4 + ndim])
            vals = lines[i + 1].split() if numel else []
            bits = torch.tensor([int(x, 16) for x in vals], dtype=torch.int64).to(torch.int32) if numel else \
                torch.empty(0, dtype=torch.int32)
            tensors[name] = (dtype, shape, bits.view(torch.float32).reshape(shape))
            i += 1
        i += 1
    return (tensors, meta), None


def same_f32(a, b):
    """Bitwise equal float32 tensors, any NaN matching any NaN."""
    a = a.reshape(-1)
    b = b.reshape(-1)
    if a.shape != b.shape:
        return False
    nan = torch.isnan(a) & torch.isnan(b)
    return bool(torch.all(nan | (a.view(torch.int32) == b.view(torch.int32))))


def sample_tensors():
    g = torch.Generator().manual_seed(7)
    t = {}
    t["conv1.weight"] = torch.randn(4, 3, 3, 3, generator=g)
    t["f16.special"] = torch.tensor([1.0, -2.0, 1 / 3, 6e-8, 65504.0, float("inf"), float("-inf"), float("nan"), -0.0,
                                     6.1e-5], dtype=torch.float16)
    t["bf16"] = torch.cat([torch.randn(17, generator=g), torch.tensor([float("inf"), -0.0, 1e-39, 3e38])]).to(torch.bfloat16)
    t["f64"] = torch.tensor([0.1, 1e300, -1e300, 1e-50, float("nan"), 3.4028235677973366e38, 2.0 ** -149, -7.25],
                            dtype=torch.float64)
    t["layer1.0.bn1.num_batches_tracked"] = torch.tensor(12345, dtype=torch.int64)
    t["i64"] = torch.tensor([0, -1, 2 ** 40 + 1, -(2 ** 62), 2 ** 63 - 1, 16777217], dtype=torch.int64)
    t["i32"] = torch.tensor([-(2 ** 31), 2 ** 31 - 1, 5], dtype=torch.int32)
    t["i16"] = torch.tensor([-32768, 32767], dtype=torch.int16)
    t["i8"] = torch.tensor([[-128, 127], [0, 1]], dtype=torch.int8)
    t["u8"] = torch.arange(256, dtype=torch.int64).to(torch.uint8).reshape(16, 16)
    t["mask"] = torch.tensor([True, False, True])
    t["scalar"] = torch.tensor(3.5)
    t["empty"] = torch.empty(0, 3)
    t["empty_i64"] = torch.empty(0, dtype=torch.int64)
    t["five.dims"] = torch.randn(1, 2, 1, 3, 2, generator=g).to(torch.float64)
    t["nämé ünïcode"] = torch.randn(2, generator=g)
    return t


META = {"format": "pt", "note": "quote \" backslash \\ newline\n ünïcode", "empty": ""}


def main():
    driver = os.environ.get("DG_TOOL_SAFETENSORS", "./tool_safetensors")
    check(os.access(driver, os.X_OK), f"driver {driver} is built")
    if not os.access(driver, os.X_OK):
        print(f"{passed} passed, {failed} failed")
        return 1
    tmp = tempfile.mkdtemp(prefix="dg_st_torch_")
    try:
        tensors = sample_tensors()

        # 1. Python-written files (compact, indented and leading-padded header, offsets in another order) → C reader.
        variants = [
            ("compact", dict(metadata=META)),
            ("reordered", dict(metadata=META, order=sorted(tensors))),
            ("indented", dict(metadata=None, indent=2)),
            ("leading whitespace", dict(metadata=META, lead=b"\n \t")),
        ]
        for label, kw in variants:
            path = os.path.join(tmp, f"py_{label}.safetensors")
            write_st(path, tensors, **kw)
            res, err = dump(driver, path, tmp)
            check(res is not None, f"{label}: C reader rejected a torch file: {err}")
            if res is None:
                continue
            got, meta = res
            check(list(got) == list(tensors), f"{label}: tensor order {list(got)[:4]}...")
            check(meta == (kw.get("metadata") or {}), f"{label}: metadata {meta}")
            for name, t in tensors.items():
                if name not in got:
                    check(False, f"{label}: {name} missing")
                    continue
                dtype, shape, vals = got[name]
                check(dtype == DTYPES[t.dtype], f"{label}/{name}: dtype {dtype}")
                check(shape == list(t.shape), f"{label}/{name}: shape {shape} vs {list(t.shape)}")
                want = t.to(torch.float32)
                check(same_f32(vals, want), f"{label}/{name}: values differ\n  C:     {vals.reshape(-1)[:8]}"
                      f"\n  torch: {want.reshape(-1)[:8]}")

        # 2. C writer (raw copy, every dtype) → strict Python reader.
        src = os.path.join(tmp, "py_compact.safetensors")
        copy = os.path.join(tmp, "c_copy.safetensors")
        r = run_driver(driver, "copy", src, copy)
        check(r.returncode == 0, "copy: " + r.stderr)
        if r.returncode == 0:
            back, meta = read_st_strict(copy)
            check(list(back) == list(tensors), "copy: names/order")
            check(meta == dict(META, written_by="dnnguard"), f"copy: metadata {meta}")
            for name, t in tensors.items():
                b = back.get(name)
                check(b is not None and b.dtype == t.dtype and list(b.shape) == list(t.shape),
                      f"copy/{name}: dtype/shape {None if b is None else (b.dtype, list(b.shape))}")
                if b is not None and b.dtype == t.dtype and b.shape == t.shape:
                    check(raw_bytes(b) == raw_bytes(t), f"copy/{name}: bytes differ")
            head = open(copy, "rb").read(40)
            check(head[8:24] == b'{"__metadata__":', f"copy: header starts {head[8:24]!r}")
            check(not os.path.exists(copy + f".tmp.{os.getpid()}") and
                  not any(".tmp." in x for x in os.listdir(tmp)), "copy: temporary file left")

        # 3. C reader → F32 → C writer → Python: the path model_io takes.
        f32 = os.path.join(tmp, "c_f32.safetensors")
        r = run_driver(driver, "tof32", src, f32)
        check(r.returncode == 0, "tof32: " + r.stderr)
        if r.returncode == 0:
            back, _ = read_st_strict(f32)
            for name, t in tensors.items():
                b = back.get(name)
                check(b is not None and b.dtype == torch.float32 and list(b.shape) == list(t.shape),
                      f"tof32/{name}: dtype/shape")
                if b is not None:
                    check(same_f32(b, t.to(torch.float32)), f"tof32/{name}: values differ")

        # 4. A torch state dict round trip: nn.Module → file → C copy → load_state_dict.
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                  torch.nn.Flatten(), torch.nn.Linear(8 * 30 * 30, 10))
        sd = {k: v.detach().clone() for k, v in net.state_dict().items()}
        p1, p2 = os.path.join(tmp, "sd.safetensors"), os.path.join(tmp, "sd_c.safetensors")
        write_st(p1, sd, metadata={"arch": "tiny"})
        r = run_driver(driver, "copy", p1, p2)
        check(r.returncode == 0, "state dict copy: " + r.stderr)
        if r.returncode == 0:
            back, meta = read_st_strict(p2)
            net2 = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                       torch.nn.Flatten(), torch.nn.Linear(8 * 30 * 30, 10))
            missing, unexpected = net2.load_state_dict(back, strict=True)
            check(not missing and not unexpected, "state dict keys")
            x = torch.randn(2, 3, 32, 32)
            net.eval()
            net2.eval()
            check(torch.equal(net(x), net2(x)), "state dict outputs differ after the C round trip")
            check(meta.get("arch") == "tiny", "state dict metadata")

        # 5. Malformed files written here are refused with the path in the message.
        bad = os.path.join(tmp, "bad.safetensors")
        hdr = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
        gap = json.dumps({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                          "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}).encode()
        cases = {
            "truncated data": struct.pack("<Q", len(hdr)) + hdr + b"\0" * 12,
            "bad dtype": struct.pack("<Q", len(hdr)) + hdr.replace(b"F32", b"Q32") + b"\0" * 16,
            "header too long": struct.pack("<Q", len(hdr) + 100) + hdr + b"\0" * 16,
            "not json": struct.pack("<Q", 8) + b"notjson!" + b"\0" * 16,
            "short": b"\x01\x00",
            # the reference's MetadataIncompleteBuffer and InvalidOffset: bytes that no tensor covers
            "trailing bytes": struct.pack("<Q", len(hdr)) + hdr + b"\0" * 20,
            "gap": struct.pack("<Q", len(gap)) + gap + b"\0" * 12,
        }
        for label, blob in cases.items():
            with open(bad, "wb") as f:
                f.write(blob)
            r = run_driver(driver, "dump", bad, os.path.join(tmp, "x.txt"))
            check(r.returncode == 1 and r.stderr.startswith(bad + ": "), f"{label}: rc {r.returncode} '{r.stderr}'")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
