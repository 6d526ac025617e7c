"""Speed of the faceswap-onnx engine's own work on this machine, with stand-in models.

    python bench/faceswap_onnx_speed.py [--json] [--frames N] [--heavy]

The real models (an inswapper_128-style swapper, about 530 MB, and an ArcFace w600k recogniser)
are not here, so the swapper and recogniser are random-weight graphs of the real signatures
(``tests/face/onnx_models.py``): a few thousand operations per crop. The figures are therefore
everything the engine does around the model (tracking and smoothing the faces, aligning each
face into its 128x128 crop, running onnxruntime, pasting back under the feathered mask) on the
astronaut clip of ``bench/faceswap_speed.py`` at 640x360 and 1280x720, one face; a real
swapper adds its own inference time per face on top.

``--heavy`` also times one 3x3 convolution of 1024 to 1024 channels on a 32x32 map in
onnxruntime (19.3 GFLOP, random weights): how many such layers a second this CPU runs, for
anyone who knows a model's layer sizes and wants to estimate its time. It is not the real
model's time.

Each figure is frames per second of wall time and of this process's CPU time: on a shared
machine the CPU figure is what the work costs; the wall figure is what one busy run gave.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.faceswap_speed import clip
from tests.face import onnx_models
from tests.face.swap_faces import astronaut_face, other_person

from animatica.engines.faceswap_onnx import OnnxSwapEngine


def timed(work) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def speed(engine: OnnxSwapEngine, photo: np.ndarray, frames: np.ndarray, chunk: int) -> dict[str, float]:
    engine.animate(engine.prepare(photo, frames[0]), frames[:3])  # face models loaded, caches warm
    state = engine.prepare(photo, frames[0])
    wall, cpu = timed(
        lambda: [engine.animate(state, frames[i : i + chunk]) for i in range(0, len(frames), chunk)]
    )
    tracking = engine.prepare(photo, frames[0])
    _track_wall, track_cpu = timed(lambda: engine.warm_up(tracking, frames))
    n = len(frames)
    return {
        "fps_wall": round(n / wall, 1),
        "fps_cpu": round(n / cpu, 1),
        "ms_per_frame_tracking_cpu": round(1000 * track_cpu / n, 1),
        "ms_per_frame_align_infer_paste_cpu": round(1000 * (cpu - track_cpu) / n, 1),
    }


def heavy_layer(folder: Path) -> dict[str, float]:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = rng.normal(0, 0.01, (1024, 1024, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
        "layer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1024, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1024, 32, 32])],
        initializer=[numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", onnx_models.OPSET)])
    model.ir_version = onnx_models.IR_VERSION
    path = folder / "layer.onnx"
    path.write_bytes(model.SerializeToString())
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = rng.normal(size=(1, 1024, 32, 32)).astype(np.float32)
    session.run(None, {"x": x})
    runs = 3
    wall, _cpu = timed(lambda: [session.run(None, {"x": x}) for _ in range(runs)])
    gflop = 2 * 1024 * 1024 * 9 * 32 * 32 / 1e9
    return {
        "gflop_per_layer": round(gflop, 1),
        "s_per_layer_wall": round(wall / runs, 3),
        "gflops": round(gflop * runs / wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--chunk", type=int, default=8, help="frames per animate call (the pipeline's batch)")
    parser.add_argument("--heavy", action="store_true")
    args = parser.parse_args()
    flags = sorted({f for f in Path("/proc/cpuinfo").read_text().split() if f.startswith(("avx2", "avx512"))})
    result: dict[str, object] = {
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": platform.processor(),
            "flags": flags,
            "load": os.getloadavg(),
        },
        "models": "random weights, real signatures (tests/face/onnx_models.py); not the real models' speed",
        "speed": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        swapper, recogniser = onnx_models.pair(Path(tmp))
        engine = OnnxSwapEngine(swap_model=str(swapper), identity_model=str(recogniser))
        astronaut, other = astronaut_face(400), other_person()
        for size in ((360, 640), (720, 1280)):
            frames = clip(astronaut, size, args.frames)
            result["speed"][f"{size[1]}x{size[0]}"] = speed(engine, other, frames, args.chunk)  # type: ignore[index]
        if args.heavy:
            result["onnxruntime 1024x1024 3x3 conv at 32x32"] = heavy_layer(Path(tmp))
    result["machine"]["load_after"] = os.getloadavg()  # type: ignore[index]
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
