#!/usr/bin/env python3
"""Tiny pure-numpy safetensors reader/writer, restricted to F32 (see docs/model-format.md).

Layout: u64 LE header length N, N bytes of UTF-8 JSON
{"name": {"dtype": "F32", "shape": [...], "data_offsets": [b, e]}, ..., "__metadata__": {str: str}},
then the tensor bytes (offsets relative to the end of the header), tightly packed with no gaps or
overlaps. The writer pads the header with spaces to a multiple of 8 bytes (as the reference
safetensors library does), so that tensor data starts 8-byte aligned.
"""
import json
import struct

import numpy as np

MAX_HEADER = 100 * 1024 * 1024


def _fail(path, msg):
    raise ValueError(f"{path}: {msg}")


def read(path):
    """Return (tensors: dict name -> np.float32 array (C order), metadata: dict str -> str)."""
    with open(path, "rb") as f:
        buf = f.read()
    return parse(buf, str(path))


def parse(buf, path="<bytes>"):
    if len(buf) < 8:
        _fail(path, f"truncated file: {len(buf)} bytes, expected at least 8 for the header length")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > MAX_HEADER:
        _fail(path, f"header length {n} exceeds the limit {MAX_HEADER}")
    if 8 + n > len(buf):
        _fail(path, f"truncated header: header length {n} needs {8 + n} bytes, file has {len(buf)}")
    try:
        header = json.loads(buf[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        _fail(path, f"header is not valid UTF-8 JSON: {e}")
    if not isinstance(header, dict):
        _fail(path, f"header must be a JSON object, found {type(header).__name__}")
    data = memoryview(buf)[8 + n:]
    data_len = len(data)

    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        _fail(path, f"__metadata__ must be an object, found {type(metadata).__name__}")
    for k, v in metadata.items():
        if not isinstance(v, str):
            _fail(path, f"__metadata__ key '{k}': expected a string value, found {type(v).__name__}")

    spans = []
    tensors = {}
    for name, info in header.items():
        if not isinstance(info, dict):
            _fail(path, f"tensor '{name}': expected an object, found {type(info).__name__}")
        for key in ("dtype", "shape", "data_offsets"):
            if key not in info:
                _fail(path, f"tensor '{name}': missing '{key}'")
        if info["dtype"] != "F32":
            _fail(path, f"tensor '{name}': dtype expected F32, found {info['dtype']}")
        shape = info["shape"]
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                  for d in shape):
            _fail(path, f"tensor '{name}': shape must be a list of non-negative integers, found {shape!r}")
        offs = info["data_offsets"]
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offs)):
            _fail(path, f"tensor '{name}': data_offsets must be [begin, end] integers, found {offs!r}")
        b, e = offs
        if b < 0 or e < b:
            _fail(path, f"tensor '{name}': data_offsets [{b}, {e}] are not an increasing pair")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if e - b != 4 * count:
            _fail(path, f"tensor '{name}': data_offsets span {e - b} bytes, expected {4 * count} for shape {shape}")
        if e > data_len:
            _fail(path, f"tensor '{name}': data_offsets end {e} is beyond the data ({data_len} bytes); "
                        f"truncated file?")
        spans.append((b, e, name))
        tensors[name] = np.frombuffer(data[b:e], dtype="<f4").reshape(tuple(shape)).astype(np.float32, copy=True)

    spans.sort()
    pos = 0
    for b, e, name in spans:
        if b < pos:
            _fail(path, f"tensor '{name}': data_offsets [{b}, {e}] overlap the previous tensor (ends at {pos})")
        if b > pos:
            _fail(path, f"tensor '{name}': gap in the data before offset {b} (expected {pos})")
        pos = e
    if pos != data_len:
        _fail(path, f"data is {data_len} bytes but the tensors cover {pos}: "
                    f"{data_len - pos} unexpected trailing bytes")
    return tensors, dict(metadata)


def serialize(tensors, metadata=None):
    header = {}
    if metadata:
        md = {}
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ValueError(f"metadata '{k}': keys and values must be strings, found {type(v).__name__}")
            md[k] = v
        header["__metadata__"] = md
    chunks = []
    off = 0
    for name, arr in tensors.items():
        if name == "__metadata__":
            raise ValueError("'__metadata__' is not a valid tensor name")
        a = np.asarray(arr, dtype="<f4")  # (np.ascontiguousarray would turn a scalar into [1])
        raw = a.tobytes(order="C")
        header[name] = {"dtype": "F32", "shape": [int(d) for d in a.shape], "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    return struct.pack("<Q", len(hb)) + hb + b"".join(chunks)


def write(path, tensors, metadata=None):
    """Write tensors (name -> array, converted to little-endian float32) with string metadata."""
    blob = serialize(tensors, metadata)
    with open(path, "wb") as f:
        f.write(blob)
    return len(blob)
