"""Small random-weight ONNX models with the signatures of a real face swapper and recogniser.

The swapper takes ``target`` (N, 3, 128, 128) and ``source`` (1, 512) and answers (N, 3, 128,
128) in 0..1: a 3x3 convolution of the target plus a per-channel shift computed from the source,
through a sigmoid, so that its output depends on both the face crop and the identity. Its last
initializer is a 512x512 matrix, where the real model keeps its identity map. The recogniser
pools the 112x112 crop to 14x14 and multiplies by a random matrix into 512 numbers, so different
faces give different identities. Both build and save in milliseconds.
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 9


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(array, name)


def swapper(
    path: Path,
    *,
    seed: int = 0,
    batch: int | str = "N",
    side: int = 128,
    source_name: str = "source",
    emap: np.ndarray | None = None,
    with_emap: bool = True,
) -> Path:
    """A swapper of the real signature (or, through the arguments, a wrong one) saved at ``path``."""
    rng = np.random.default_rng(seed)
    target = helper.make_tensor_value_info("target", TensorProto.FLOAT, [batch, 3, side, side])
    source = helper.make_tensor_value_info(source_name, TensorProto.FLOAT, [1, 512])
    output = helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, 3, side, side])
    kernel = rng.normal(0.0, 0.25, (3, 3, 3, 3)).astype(np.float32)
    kernel[[0, 1, 2], [0, 1, 2], 1, 1] += 2.0  # mostly the crop itself, so a face stays a face
    inits = [
        _init("kernel", kernel),
        _init("shift_weight", rng.normal(0.0, 2.0, (512, 3)).astype(np.float32)),
        _init("shift_shape", np.array([1, 3, 1, 1], dtype=np.int64)),
    ]
    if with_emap:
        matrix = emap if emap is not None else rng.normal(0.0, 1.0 / np.sqrt(512), (512, 512))
        inits.append(_init("emap", np.asarray(matrix, dtype=np.float32)))
    nodes = [
        helper.make_node("Conv", ["target", "kernel"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("MatMul", [source_name, "shift_weight"], ["shift_flat"]),
        helper.make_node("Reshape", ["shift_flat", "shift_shape"], ["shift"]),
        helper.make_node("Add", ["conv", "shift"], ["raw"]),
        helper.make_node("Sub", ["raw", "half"], ["centred"]),
        helper.make_node("Sigmoid", ["centred"], ["output"]),
    ]
    inits.insert(0, _init("half", np.array(1.0, dtype=np.float32)))
    graph = helper.make_graph(nodes, "swapper", [target, source], [output], initializer=inits)
    return _save(graph, path)


def recogniser(
    path: Path, *, seed: int = 1, side: int = 112, size: int = 512, batch: int | str = "N"
) -> Path:
    """A recogniser of the real signature (or a wrong one: ``side``, ``size``) saved at ``path``."""
    rng = np.random.default_rng(seed)
    cells = side // 8
    image = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [batch, 3, side, side])
    output = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [batch, size])
    inits = [_init("project", rng.normal(0.0, 1.0, (3 * cells * cells, size)).astype(np.float32))]
    nodes = [
        helper.make_node("AveragePool", ["input.1"], ["pooled"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "project"], ["embedding"]),
    ]
    graph = helper.make_graph(nodes, "recogniser", [image], [output], initializer=inits)
    return _save(graph, path)


def pair(folder: Path) -> tuple[Path, Path]:
    """(swapper, recogniser) of the real signatures in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    return swapper(folder / "swapper.onnx"), recogniser(folder / "recogniser.onnx")
