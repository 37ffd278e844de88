"""Run an ONNX graph with PyTorch, so NudeNet's detector works on CUDA without onnxruntime-gpu.

Covers the operators of NudeNet's 320n model (an Ultralytics YOLOv8n export, opset 17) and
raises on anything else. Integer "shape" tensors (Shape, Gather, Range...) stay on the CPU,
so the graph's anchor arithmetic costs no device synchronisation; float tensors live on
the chosen device. Convolutions run in strict float32: cuDNN's TF32 is switched off while
the graph runs, because TF32 moves scores by about 1e-3 and would break equivalence with
onnxruntime.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from diffwatch.scoring.nsfw.onnx_reader import OnnxGraph, OnnxNode, read_onnx

if TYPE_CHECKING:
    import torch

_CAST: dict[int, str] = {1: "float32", 6: "int32", 7: "int64", 9: "bool", 11: "float64"}


def _dev(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """Move CPU operands to the device of any non-CPU operand (shape maths meets features)."""
    target = next((t.device for t in tensors if t.device.type != "cpu"), None)
    if target is None:
        return list(tensors)
    return [t if t.device == target else t.to(target) for t in tensors]


def _ints(t: torch.Tensor) -> list[int]:
    return [int(v) for v in t.reshape(-1).tolist()]


class TorchOnnxRunner:
    """Executes an ``OnnxGraph`` node by node with torch ops, on one device."""

    def __init__(self, graph: OnnxGraph, device: str) -> None:
        import torch

        self._torch = torch
        self.graph = graph
        self.device = torch.device(device)
        unsupported = sorted({n.op_type for n in graph.nodes} - set(self._ops()))
        if unsupported or any(n.domain not in ("", "ai.onnx") for n in graph.nodes):
            raise ValueError(
                f"ONNX graph uses operators the torch backend does not implement: "
                f"{unsupported}; use backend='onnxruntime' for this model"
            )
        self._consts: dict[str, torch.Tensor] = {}
        for name, array in graph.initializers.items():
            t = torch.from_numpy(array.copy())  # copy(): ascontiguousarray makes 0-d 1-d
            self._consts[name] = t.to(self.device) if array.dtype.kind == "f" else t

    def _ops(self) -> dict[str, Callable[[OnnxNode, list[torch.Tensor]], list[torch.Tensor]]]:
        return {
            "Conv": self._conv,
            "Sigmoid": lambda n, x: [x[0].sigmoid()],
            "Mul": lambda n, x: [self._binary(x, "mul")],
            "Add": lambda n, x: [self._binary(x, "add")],
            "Sub": lambda n, x: [self._binary(x, "sub")],
            "Div": lambda n, x: [self._binary(x, "div")],
            "Split": self._split,
            "Concat": lambda n, x: [self._torch.cat(_dev(*x), dim=int(n.attrs["axis"]))],
            "MaxPool": self._maxpool,
            "Resize": self._resize,
            "Reshape": self._reshape,
            "Shape": lambda n, x: [self._torch.tensor(list(x[0].shape), dtype=self._torch.int64)],
            "Gather": self._gather,
            "Unsqueeze": self._unsqueeze,
            "Cast": lambda n, x: [x[0].to(getattr(self._torch, _CAST[int(n.attrs["to"])]))],
            "Range": self._range,
            "Expand": self._expand,
            "ConstantOfShape": self._constant_of_shape,
            "Transpose": self._transpose,
            "Softmax": lambda n, x: [x[0].softmax(dim=int(n.attrs.get("axis", -1)))],
            "Slice": self._slice,
        }

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Run the graph on a float32 (B, 3, H, W) batch; return its first output."""
        torch = self._torch
        values: dict[str, torch.Tensor] = dict(self._consts)
        values[self.graph.inputs[0]] = x.to(self.device, torch.float32)
        ops = self._ops()
        with torch.inference_mode(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
            for node in self.graph.nodes:
                args = [values[name] for name in node.inputs if name]
                for name, out in zip(node.outputs, ops[node.op_type](node, args), strict=True):
                    values[name] = out
        return values[self.graph.outputs[0]]

    def _binary(self, x: list[torch.Tensor], op: str) -> torch.Tensor:
        a, b = _dev(*x)
        if op == "div" and not (a.is_floating_point() or b.is_floating_point()):
            return self._torch.div(a, b, rounding_mode="trunc")
        return getattr(self._torch, op)(a, b)

    def _conv(self, node: OnnxNode, x: list[torch.Tensor]) -> list[torch.Tensor]:
        pads = list(node.attrs.get("pads", [0, 0, 0, 0]))
        if node.attrs.get("auto_pad", "NOTSET") != "NOTSET" or pads[:2] != pads[2:]:
            raise ValueError(f"Conv {node.outputs[0]}: only symmetric explicit pads are supported")
        return [
            self._torch.nn.functional.conv2d(
                x[0],
                x[1],
                x[2] if len(x) > 2 else None,
                stride=tuple(node.attrs.get("strides", [1, 1])),
                padding=tuple(pads[:2]),
                dilation=tuple(node.attrs.get("dilations", [1, 1])),
                groups=int(node.attrs.get("group", 1)),
            )
        ]

    def _maxpool(self, node: OnnxNode, x: list[torch.Tensor]) -> list[torch.Tensor]:
        pads = list(node.attrs.get("pads", [0, 0, 0, 0]))
        if pads[:2] != pads[2:]:
            raise ValueError(f"MaxPool {node.outputs[0]}: asymmetric pads are not supported")
        return [
            self._torch.nn.functional.max_pool2d(
                x[0],
                kernel_size=tuple(node.attrs["kernel_shape"]),
                stride=tuple(node.attrs.get("strides", [1, 1])),
                padding=tuple(pads[:2]),
                dilation=tuple(node.attrs.get("dilations", [1, 1])),
                ceil_mode=bool(node.attrs.get("ceil_mode", 0)),
            )
        ]

    def _resize(self, node: OnnxNode, x: list[torch.Tensor]) -> list[torch.Tensor]:
        mode = (node.attrs.get("mode"), node.attrs.get("coordinate_transformation_mode"))
        nearest = node.attrs.get("nearest_mode", "round_prefer_floor")
        scales = [float(v) for v in self._consts[node.inputs[2]].tolist()]
        if mode != ("nearest", "asymmetric") or nearest != "floor" or scales[:2] != [1.0, 1.0]:
            raise ValueError(f"Resize {node.outputs[0]}: only nearest/asymmetric/floor works")
        # torch's "nearest" is floor(dst * in/out): ONNX's asymmetric + floor.
        out = self._torch.nn.functional.interpolate(x[0], scale_factor=scales[2:], mode="nearest")
        return [out]

    def _split(self, node: OnnxNode, x: list[torch.Tensor]) -> list[torch.Tensor]:
        axis = int(node.attrs.get("axis", 0))
        if len(x) > 1:
            sizes = _ints(x[1])
        else:
            n = len(node.outputs)
            sizes = [x[0].shape[axis] // n] * n
        return list(self._torch.split(x[0], sizes, dim=axis))

    def _reshape(self, node: OnnxNode, x: list[torch.Tensor]) -> list[torch.Tensor]:
        shape = _ints(x[1])
        if not node.attrs.get("allowzero", 0):
            shape = [x[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
        return [x[0].reshape(shape)]

    def _gather(self, node: OnnxNode, x: list[torch.Tensor]) -> list[torch.Tensor]:
        data, idx = x
        axis = int(node.attrs.get("axis", 0)) % data.dim()
        idx = idx.to(data.device).long()
        flat = _wrap_negative(idx, data.shape[axis]).reshape(-1)
        out = data.index_select(axis, flat)
        shape = list(data.shape[:axis]) + list(idx.shape) + list(data.shape[axis + 1 :])
        return [out.reshape(shape)]

    def _unsqueeze(self, node: OnnxNode, x: list[torch.Tensor]) -> list[torch.Tensor]:
        axes = _ints(x[1]) if len(x) > 1 else list(node.attrs["axes"])
        rank = x[0].dim() + len(axes)
        out = x[0]
        for axis in sorted(a % rank for a in axes):
            out = out.unsqueeze(axis)
        return [out]

    def _range(self, node: OnnxNode, x: list[torch.Tensor]) -> list[torch.Tensor]:
        start, limit, delta = (t.reshape(()) for t in x)
        out = self._torch.arange(start.item(), limit.item(), delta.item(), dtype=start.dtype)
        return [out.to(start.device)]

    def _expand(self, node: OnnxNode, x: list[torch.Tensor]) -> list[torch.Tensor]:
        shape = self._torch.broadcast_shapes(tuple(x[0].shape), tuple(_ints(x[1])))
        return [x[0].expand(shape)]

    def _constant_of_shape(self, node: OnnxNode, x: list[torch.Tensor]) -> list[torch.Tensor]:
        value = node.attrs.get("value")
        fill = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
        t = self._torch.from_numpy(np.ascontiguousarray(fill[:1]))
        return [t.expand(_ints(x[0])).clone()]

    def _transpose(self, node: OnnxNode, x: list[torch.Tensor]) -> list[torch.Tensor]:
        perm = node.attrs.get("perm") or list(reversed(range(x[0].dim())))
        return [x[0].permute(*perm)]

    def _slice(self, node: OnnxNode, x: list[torch.Tensor]) -> list[torch.Tensor]:
        data = x[0]
        starts, ends = _ints(x[1]), _ints(x[2])
        axes = _ints(x[3]) if len(x) > 3 else list(range(len(starts)))
        steps = _ints(x[4]) if len(x) > 4 else [1] * len(starts)
        index: list[slice] = [slice(None)] * data.dim()
        for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
            if step <= 0:
                raise ValueError(f"Slice {node.outputs[0]}: only positive steps are supported")
            dim = data.shape[axis]
            start = max(0, min(dim, start + dim if start < 0 else start))
            end = max(0, min(dim, end + dim if end < 0 else end))
            index[axis % data.dim()] = slice(start, end, step)
        return [data[tuple(index)]]


def _wrap_negative(idx: torch.Tensor, dim: int) -> torch.Tensor:
    """ONNX Gather allows negative indices counting from the end."""
    return idx + (idx < 0).to(idx.dtype) * dim


def load_torch_runner(model_path: str | Path, device: str) -> TorchOnnxRunner:
    """Read an ONNX file and place its weights on ``device`` ('cpu', 'cuda', 'cuda:1')."""
    return TorchOnnxRunner(read_onnx(model_path), device)
