"""LivePortrait weights derived from the parameter names alone, in the public file layout.

The reference numbers in ``reference/parity.npz`` were computed by the public implementation with
these weights, so Animatica's networks can be checked against them without the public weight files.
Each tensor has its own random stream, seeded by the CRC-32 of ``salt + role + "." + key``; ``role``
names the file (``motion_extractor``, ...; ``stitching_retargeting_module.retarget_eye`` for a part
of the stitching file) and ``key`` is the key as stored (with the ``module.`` prefix of the
stitching file). What is drawn depends on the key's last part and on a few named heads:

- BatchNorm statistics: mean U(-0.1, 0.1), variance U(0.5, 1.5), ``num_batches_tracked`` 0;
- 1-D ``weight`` (norm scales) U(0.5, 1.5); ``bias`` U(-0.1, 0.1) unless named in ``BIAS_RANGE``;
  ConvNeXt-V2 GRN ``gamma`` U(-0.5, 0.5), ``beta`` U(-0.1, 0.1);
- conv / linear kernels U(-b, b) with b = gain / sqrt(fan in), gain sqrt(3) unless named in
  ``GAIN``, so that activations keep their size through the layers and the heads give outputs of a
  realistic size; the depthwise 7x7 kernels of the motion extractor are made zero-sum per channel,
  so that the pose and expression heads react to shapes and not to flat colour;
- spectral-norm vectors: power iteration on the drawn kernel (see ``spectral_vectors``).
"""

import json
import zlib
from pathlib import Path

import numpy as np
import torch

SHAPES_PATH = Path(__file__).resolve().parent / "reference" / "state_shapes.json"
BASE_ROLES = ("appearance_feature_extractor", "motion_extractor", "warping_module", "spade_generator")
STITCHING_ROLE = "stitching_retargeting_module"
STITCHING_PARTS = ("retarget_shoulder", "retarget_mouth", "retarget_eye")

_ME = "motion_extractor.detector."
_SR = "stitching_retargeting_module."
GAIN = {
    _ME + "fc_pitch.weight": 4.0,
    _ME + "fc_yaw.weight": 4.0,
    _ME + "fc_roll.weight": 4.0,
    _ME + "fc_kp.weight": 0.3,
    _ME + "fc_exp.weight": 0.1,
    _ME + "fc_t.weight": 0.1,
    _ME + "fc_scale.weight": 0.2,
    "warping_module.dense_motion_network.mask.weight": 25.0,
    "warping_module.dense_motion_network.occlusion.weight": 30.0,
    "spade_generator.conv_img.0.weight": 2.0,
    # the last layer of each retargeting MLP
    _SR + "retarget_shoulder.module.mlp.6.weight": 0.3,
    _SR + "retarget_mouth.module.mlp.6.weight": 0.3,
    _SR + "retarget_eye.module.mlp.10.weight": 0.3,
}
BIAS_RANGE = {
    _ME + "fc_kp.bias": (-0.6, 0.6),  # canonical keypoints spread over the volume
    _ME + "fc_scale.bias": (0.9, 1.1),
    _SR + "retarget_shoulder.module.mlp.6.bias": (-0.02, 0.02),
    _SR + "retarget_mouth.module.mlp.6.bias": (-0.02, 0.02),
    _SR + "retarget_eye.module.mlp.10.bias": (-0.02, 0.02),
}
POWER_ROUNDS = 20


def load_shapes(path: Path = SHAPES_PATH) -> dict:
    """The public files' keys and shapes (``reference/state_shapes.json``, written by ``trim.py``)."""
    return json.loads(Path(path).read_text())


def _stream(salt: str, name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(f"{salt}{name}".encode()))


def named_array(salt: str, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """The float32 value of the tensor ``name`` (role + "." + key), other than spectral-norm vectors."""
    rng = _stream(salt, name)
    kind = name.rsplit(".", 1)[1]
    low_high = {
        "running_mean": (-0.1, 0.1),
        "running_var": (0.5, 1.5),
        "gamma": (-0.5, 0.5),
        "beta": (-0.1, 0.1),
        "bias": BIAS_RANGE.get(name, (-0.1, 0.1)),
    }
    if kind == "weight" and len(shape) == 1:
        low_high["weight"] = (0.5, 1.5)
    if kind in low_high:
        values = rng.uniform(*low_high[kind], shape)
    elif kind in ("weight", "weight_orig"):
        fan_in = int(np.prod(shape[1:]))
        gain = GAIN.get(name.removesuffix("_orig"), np.sqrt(3.0))
        bound = gain / np.sqrt(fan_in)
        values = rng.uniform(-bound, bound, shape)
        if name.endswith(".dwconv.weight"):
            values = values - values.mean(axis=(2, 3), keepdims=True)
    else:
        raise ValueError(f"no rule for {name}")
    return values.astype(np.float32).reshape(shape)


def spectral_vectors(salt: str, name_v: str, kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors u, v with u . (W v) = |W v| close to W's largest singular value.

    W is the kernel viewed as (out, -1); v starts from a Gaussian drawn from the stream of the
    ``weight_v`` key, then POWER_ROUNDS rounds of v <- W^T (W v / |W v|), normalised, all in float64,
    and u = W v / |W v| at the end.
    """
    w = kernel.astype(np.float64).reshape(kernel.shape[0], -1)
    v = _stream(salt, name_v).standard_normal(w.shape[1])
    v = v / np.linalg.norm(v)
    for _ in range(POWER_ROUNDS):
        u = w @ v
        u = u / np.linalg.norm(u)
        v = w.T @ u
        v = v / np.linalg.norm(v)
    u = w @ v
    u = u / np.linalg.norm(u)
    return u.astype(np.float32), v.astype(np.float32)


def named_state_dict(role: str, shapes: dict[str, list[int]], salt: str = "") -> dict[str, torch.Tensor]:
    """One file's (or stitching part's) state dict, keys in the order of ``shapes``."""
    arrays: dict[str, np.ndarray] = {}
    for key, shape in shapes.items():
        if not key.endswith(("weight_u", "weight_v", "num_batches_tracked")):
            arrays[key] = named_array(salt, f"{role}.{key}", tuple(shape))
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0, dtype=torch.int64)
            continue
        if key.endswith(("weight_u", "weight_v")) and key not in arrays:
            base = key[: -len("_u")]
            u, v = spectral_vectors(salt, f"{role}.{base}_v", arrays[base + "_orig"])
            arrays[base + "_u"], arrays[base + "_v"] = u, v
        state[key] = torch.from_numpy(arrays[key])
        if tuple(state[key].shape) != tuple(shape):
            raise ValueError(f"{role}.{key}: drew {tuple(state[key].shape)}, expected {tuple(shape)}")
    return state


def write_named_checkpoint(out_dir: Path, salt: str = "", shapes_path: Path = SHAPES_PATH) -> Path:
    """Write the five weight files under ``out_dir`` as the public ``pretrained_weights/liveportrait/``
    holds them, and return ``out_dir``."""
    shapes = load_shapes(shapes_path)
    out_dir = Path(out_dir)
    files: dict[str, object] = {
        shapes["layout"][role]: named_state_dict(role, shapes[role], salt) for role in BASE_ROLES
    }
    files[shapes["layout"][STITCHING_ROLE]] = {
        part: named_state_dict(f"{STITCHING_ROLE}.{part}", shapes[STITCHING_ROLE][part], salt)
        for part in STITCHING_PARTS
    }
    for relative, content in files.items():
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(content, path)
    return out_dir
