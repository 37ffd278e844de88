"""A minimal reader for ONNX model files: the graph's nodes, attributes and initializers.

The ``onnx`` package is not a dependency of diffwatch (nor is onnx2torch), and the torch
backend of the NSFW detector needs only the parts of the file listed below, so this module
decodes the protobuf wire format itself (field numbers from onnx/onnx.proto). It reads what
a plain exported model holds; it raises on what it does not understand (external data,
sub-graphs, sparse tensors, data types other than those in ``_DTYPES``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# TensorProto.DataType -> numpy dtype (onnx.proto enum values).
_DTYPES: dict[int, np.dtype] = {
    1: np.dtype(np.float32),
    2: np.dtype(np.uint8),
    3: np.dtype(np.int8),
    6: np.dtype(np.int32),
    7: np.dtype(np.int64),
    9: np.dtype(np.bool_),
    10: np.dtype(np.float16),
    11: np.dtype(np.float64),
}


@dataclass(frozen=True)
class OnnxNode:
    """One graph node: operator, input and output value names, decoded attributes."""

    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict[str, object]
    domain: str = ""


@dataclass(frozen=True)
class OnnxGraph:
    """The model's main graph, nodes in file order (ONNX requires topological order)."""

    nodes: tuple[OnnxNode, ...]
    initializers: dict[str, np.ndarray]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    opset: int


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, pos


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) for each field of one protobuf message."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} in field {field}")
        yield field, wire, value


def _signed(value: int) -> int:
    """int64 fields are varints of the two's-complement value: map back to signed."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _ints(items: list[tuple[int, int | bytes]]) -> list[int]:
    """Repeated int64, packed (wire type 2) or not (wire type 0)."""
    out: list[int] = []
    for wire, value in items:
        if wire == 2:
            assert isinstance(value, bytes)
            pos = 0
            while pos < len(value):
                v, pos = _varint(value, pos)
                out.append(_signed(v))
        else:
            assert isinstance(value, int)
            out.append(_signed(value))
    return out


def _group(buf: bytes) -> dict[int, list[tuple[int, int | bytes]]]:
    fields: dict[int, list[tuple[int, int | bytes]]] = {}
    for field, wire, value in _fields(buf):
        fields.setdefault(field, []).append((wire, value))
    return fields


def _text(items: list[tuple[int, int | bytes]] | None) -> str:
    if not items:
        return ""
    value = items[-1][1]
    assert isinstance(value, bytes)
    return value.decode("utf-8")


def _tensor(buf: bytes) -> tuple[str, np.ndarray]:
    """Decode a TensorProto into (name, array)."""
    f = _group(buf)
    name = _text(f.get(8))
    dims = _ints(f.get(1, []))
    dtype_code = int(f[2][0][1]) if 2 in f else 0
    if dtype_code not in _DTYPES:
        raise ValueError(f"ONNX tensor {name!r}: unsupported data type {dtype_code}")
    if 13 in f:  # external_data
        raise ValueError(f"ONNX tensor {name!r}: external data files are not supported")
    dtype = _DTYPES[dtype_code]
    if 9 in f:  # raw_data, little-endian
        raw = f[9][-1][1]
        assert isinstance(raw, bytes)
        array = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype)
    elif 4 in f:  # float_data (packed fixed32)
        array = np.frombuffer(b"".join(v for _, v in f[4]), dtype="<f4").astype(dtype)
    elif 7 in f:  # int64_data
        array = np.asarray(_ints(f[7]), dtype=dtype)
    elif 5 in f:  # int32_data (also holds uint8, int8, bool, float16 bits)
        array = np.asarray(_ints(f[5]), dtype=np.int64)
        array = array.astype(np.uint16).view(np.float16) if dtype_code == 10 else array
        array = array.astype(dtype)
    elif 10 in f:  # double_data
        array = np.frombuffer(b"".join(v for _, v in f[10]), dtype="<f8").astype(dtype)
    else:
        array = np.zeros(0, dtype=dtype)
    return name, array.reshape(dims)


def _attribute(buf: bytes) -> tuple[str, object]:
    f = _group(buf)
    name = _text(f.get(1))
    kind = int(f[20][0][1]) if 20 in f else 0
    # AttributeType: FLOAT=1 INT=2 STRING=3 TENSOR=4 GRAPH=5 FLOATS=6 INTS=7 STRINGS=8
    if kind == 1:
        raw = f[2][-1][1]
        assert isinstance(raw, bytes)
        return name, float(np.frombuffer(raw, dtype="<f4")[0])
    if kind == 2:
        value = f[3][-1][1]
        assert isinstance(value, int)
        return name, _signed(value)
    if kind == 3:
        return name, _text(f.get(4))
    if kind == 4:
        raw = f[5][-1][1]
        assert isinstance(raw, bytes)
        return name, _tensor(raw)[1]
    if kind == 6:
        parts = [v for w, v in f.get(7, []) if isinstance(v, bytes)]
        return name, np.frombuffer(b"".join(parts), dtype="<f4").tolist()
    if kind == 7:
        return name, _ints(f.get(8, []))
    if kind == 8:
        return name, [v.decode("utf-8") for _, v in f.get(9, []) if isinstance(v, bytes)]
    raise ValueError(f"ONNX attribute {name!r}: unsupported attribute type {kind}")


def read_onnx(path: str | Path) -> OnnxGraph:
    """Read an ONNX model file into an ``OnnxGraph`` (weights as numpy arrays)."""
    data = Path(path).read_bytes()
    model = _group(data)
    if 7 not in model:
        raise ValueError(f"{path}: not an ONNX model (no graph field)")
    opset = 0
    for _, entry in model.get(8, []):
        assert isinstance(entry, bytes)
        ops = _group(entry)
        if _text(ops.get(1)) in ("", "ai.onnx"):
            opset = int(ops[2][-1][1]) if 2 in ops else 0
    graph_buf = model[7][-1][1]
    assert isinstance(graph_buf, bytes)
    graph = _group(graph_buf)
    initializers = dict(_tensor(v) for _, v in graph.get(5, []) if isinstance(v, bytes))
    nodes = []
    for _, raw in graph.get(1, []):
        assert isinstance(raw, bytes)
        n = _group(raw)
        nodes.append(
            OnnxNode(
                op_type=_text(n.get(4)),
                inputs=tuple(v.decode() for _, v in n.get(1, []) if isinstance(v, bytes)),
                outputs=tuple(v.decode() for _, v in n.get(2, []) if isinstance(v, bytes)),
                attrs=dict(_attribute(v) for _, v in n.get(5, []) if isinstance(v, bytes)),
                domain=_text(n.get(7)),
            )
        )

    def names(field: int) -> tuple[str, ...]:
        entries = [v for _, v in graph.get(field, []) if isinstance(v, bytes)]
        return tuple(_text(_group(v).get(1)) for v in entries)

    inputs = tuple(n for n in names(11) if n not in initializers)
    return OnnxGraph(tuple(nodes), initializers, inputs, names(12), opset)
