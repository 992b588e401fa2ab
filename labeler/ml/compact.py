"""Smaller model files: store chosen fp32 weights of an ONNX graph in fewer bits (onnx only, no torch).

Each chosen initializer W is stored as fp16 under a new name and a ``Cast(to=float)`` node at the
top of the graph gives back a float32 tensor named W, so every operator still computes in fp32:
only the stored weights lose precision (rounding to fp16 is a relative error below 2^-11 per
weight). A graph that reads only float32 tensors needs no other change, and onnxruntime and
onnxruntime-web run it as before (onnxruntime's constant folding turns the Casts of stored
weights back into fp32 initializers when a session starts).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FP16_MAX = float(np.finfo(np.float16).max)


@dataclass(frozen=True)
class CompactReport:
    """What compact_weights changed: how many weights, and the file sizes before and after."""

    tensors: int
    weights: int
    bytes_before: int
    bytes_after: int

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def compact_weights(
    path: str | Path,
    *,
    fp16: Callable[[str], bool],
    fp24: Callable[[str], bool] = lambda name: False,
    min_elements: int = 1024,
) -> CompactReport:
    """Rewrite the ONNX file at ``path`` in place with smaller stored weights.

    ``fp16(name)`` picks float32 initializers stored as fp16; ``fp24(name)`` picks those stored as
    fp16 plus an int8 residual with one scale per tensor (3 bytes a weight; the residual is at most
    half an fp16 step, so the stored weight is within max|W| * 2^-19 of the original: about 100
    times closer than fp16 alone, for the layers whose rounding the output is sensitive to).
    Tensors under ``min_elements`` stay fp32 (they weigh nothing). A weight outside fp16's range
    is a ValueError rather than a silent infinity. The file is replaced atomically.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    path = Path(path)
    before = path.stat().st_size
    model = onnx.load(str(path))
    graph = model.graph
    nodes: list = []
    tensors = weights = 0
    for init in list(graph.initializer):
        if init.data_type != TensorProto.FLOAT:
            continue
        half, residual = fp16(init.name), fp24(init.name)
        if not (half or residual):
            continue
        arr = numpy_helper.to_array(init)
        if arr.size < min_elements:
            continue
        if np.abs(arr).max(initial=0.0) > FP16_MAX:
            raise ValueError(f"weight {init.name} exceeds the fp16 range; cannot store it as fp16")
        name = init.name
        hi = arr.astype(np.float16)
        init.CopyFrom(numpy_helper.from_array(hi, f"{name}__fp16"))
        if residual:
            r = arr - hi.astype(np.float32)
            scale = np.float32(max(float(np.abs(r).max()), 1e-30) / 127.0)
            q = np.clip(np.rint(r / scale), -127, 127).astype(np.int8)
            graph.initializer.append(numpy_helper.from_array(q, f"{name}__res8"))
            graph.initializer.append(numpy_helper.from_array(np.array(scale), f"{name}__res_scale"))
            nodes += [
                helper.make_node("Cast", [f"{name}__fp16"], [f"{name}__hi"], to=TensorProto.FLOAT),
                helper.make_node("Cast", [f"{name}__res8"], [f"{name}__r"], to=TensorProto.FLOAT),
                helper.make_node("Mul", [f"{name}__r", f"{name}__res_scale"], [f"{name}__lo"]),
                helper.make_node("Add", [f"{name}__hi", f"{name}__lo"], [name]),
            ]
        else:
            nodes.append(helper.make_node("Cast", [f"{name}__fp16"], [name], to=TensorProto.FLOAT))
        tensors += 1
        weights += int(arr.size)
    if not nodes:
        return CompactReport(0, 0, before, before)
    nodes += list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.compact.tmp")
    onnx.save(model, str(tmp))
    tmp.replace(path)
    return CompactReport(tensors, weights, before, path.stat().st_size)
