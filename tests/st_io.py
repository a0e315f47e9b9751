"""tests/st_io.py — read and write safetensors files by hand (no safetensors package here): an 8-byte
little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}, then the raw
little-endian data. numpy only; used by the Python tests, touches nothing else."""
import json
import struct

import numpy as np

_DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_NAMES = {v: k for k, v in _DTYPES.items()}


def _as_numpy(t):
    """A numpy array from a numpy array or a torch tensor (detached, on the CPU)."""
    if hasattr(t, "detach"):
        t = t.detach().cpu().contiguous().numpy()
    return np.asarray(t)


def write(path, tensors, metadata=None):
    """Write {name: array or tensor} to path; metadata: optional {str: str}. Names sorted, data
    8-byte aligned as the reference writer does (header padded with spaces)."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        a = _as_numpy(tensors[name])
        dt = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
        if dt not in _NAMES:
            raise ValueError(f"{name}: dtype {a.dtype} has no safetensors name")
        raw = np.ascontiguousarray(a, dtype=dt).tobytes()
        header[name] = {"dtype": _NAMES[dt], "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def read(path, with_metadata=False):
    """Read path into {name: numpy array}; checks every offset. With with_metadata, returns
    (tensors, metadata)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError(f"{path}: header length {n} past the end of the file")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    body = memoryview(data)[8 + n:]
    metadata = header.pop("__metadata__", {}) or {}
    out = {}
    for name, info in header.items():
        dt = _DTYPES.get(info["dtype"])
        if dt is None:
            raise ValueError(f"{path}: {name}: unknown dtype {info['dtype']}")
        begin, end = info["data_offsets"]
        shape = tuple(int(s) for s in info["shape"])
        count = 1
        for s in shape:
            count *= s
        if not (0 <= begin <= end <= len(body)) or end - begin != count * dt.itemsize:
            raise ValueError(f"{path}: {name}: bad data_offsets {begin}..{end} for shape {shape} {info['dtype']}")
        out[name] = np.frombuffer(body[begin:end], dtype=dt).reshape(shape).copy()
    return (out, metadata) if with_metadata else out
