"""Write the LivePortrait reference data the tests use from the shared originals, trimmed to what they need.

    python tests/liveportrait/reference/trim.py [PARITY_NPZ] [--out DIR]

``PARITY_NPZ`` defaults to ``../shared/reference/liveportrait/liveportrait_parity.npz`` beside the
repository; ``liveportrait_state_shapes.json`` is read from the same folder. Run by hand from a
checkout that has the shared reference folder beside it; the tests then read only the two files
written here (``parity.npz``, ``state_shapes.json``), so a clone of the repository alone passes them.

The original archive (24.6 MB) is cut to under 10 MB:

- the inputs are stored as uint8: every value is an exact multiple of 1/255, so ``u8 / 255`` in
  float32 gives back the very same tensors (checked here before writing);
- the appearance volume keeps every fourth sample along each axis (``feature_3d_sub``), which
  still checks every channel and every part of the volume;
- one output frame (t1, the one that moves most against t0) is kept as float32 for the
  1e-3 / 1e-4 comparisons; every output frame is also kept as the 8-bit frame the reference writes,
  ``uint8(trunc(clip(out, 0, 1) * 255))``;
- the deformation grid of t1 keeps every second depth and every fourth row and column.

The archive is written with fixed member dates, so that trimming unchanged originals gives the same
bytes and leaves nothing for version control to report.
"""

import argparse
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_SHARED = HERE.parents[3] / "shared" / "reference" / "liveportrait"
PARITY = "liveportrait_parity.npz"
SHAPES = "liveportrait_state_shapes.json"
OUT_PARITY = "parity.npz"
OUT_SHAPES = "state_shapes.json"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
FRAMES = ("t0", "t1", "t2", "t3")
FRAME_KEYS = (
    "pitch_logits", "yaw_logits", "roll_logits", "pitch", "yaw", "roll", "t", "exp", "scale", "kp",
    "R_d", "x_d", "R_new", "delta_new", "scale_new", "t_new", "x_d_i", "x_d_i_new_before_stitching",
    "stitch_delta", "x_d_i_new", "occlusion_map",
)  # fmt: skip
ABSOLUTE_KEYS = (
    "R_new", "delta_new", "scale_new", "t_new", "x_d_i", "stitch_delta", "x_d_i_new", "occlusion_map",
)  # fmt: skip
FULL_FRAME = "t1"
# The shapes file's entries the tests use; the rest (parameter counts per file) is derivable.
SHAPE_ENTRIES = (
    "source", "layout", "appearance_feature_extractor", "motion_extractor", "warping_module",
    "spade_generator", "stitching_retargeting_module", "param_counts",
)  # fmt: skip


def as_uint8_exact(key: str, value: np.ndarray) -> np.ndarray:
    """``value`` * 255 as uint8, refusing any value that would not read back bit for bit."""
    u8 = np.rint(value.astype(np.float64) * 255).clip(0, 255).astype(np.uint8)
    if not np.array_equal(u8.astype(np.float32) / np.float32(255), value):
        raise ValueError(f"{key} is not made of exact multiples of 1/255")
    return u8


def frame_u8(out: np.ndarray) -> np.ndarray:
    """The 8-bit frame as the reference writes it: clipped, scaled, truncated (not rounded)."""
    return (np.clip(out, 0, 1) * np.float32(255)).astype(np.uint8)


def trimmed_arrays(parity: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    kept = {
        "inputs/source": as_uint8_exact("inputs/source", parity["inputs/source"]),
        "inputs/driving": as_uint8_exact("inputs/driving", parity["inputs/driving"]),
        "motion_multiplier": parity["motion_multiplier"],
    }
    for key, value in parity.items():
        if key.startswith(("source/", "retarget/")) and key != "source/feature_3d":
            kept[key] = value
    kept["source/feature_3d_sub"] = parity["source/feature_3d"][:, :, ::4, ::4, ::4]
    for frame in FRAMES:
        for name in FRAME_KEYS:
            kept[f"{frame}/{name}"] = parity[f"{frame}/{name}"]
        kept[f"{frame}/out_u8"] = frame_u8(parity[f"{frame}/out"])
    kept[f"{FULL_FRAME}/out"] = parity[f"{FULL_FRAME}/out"]
    kept[f"{FULL_FRAME}/deformation_sub"] = parity[f"{FULL_FRAME}/deformation"][:, ::2, ::4, ::4, :]
    for name in ABSOLUTE_KEYS:
        kept[f"absolute/t2/{name}"] = parity[f"absolute/t2/{name}"]
    kept["absolute/t2/out_u8"] = frame_u8(parity["absolute/t2/out"])
    return {key: np.ascontiguousarray(value) for key, value in kept.items()}


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """A compressed .npz that ``numpy.load`` reads, byte-identical for identical arrays."""
    partial = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for key in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, arrays[key], allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=ZIP_DATE)
            archive.writestr(info, member.getvalue(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    partial.replace(path)


def write_shapes(source: Path, path: Path) -> None:
    """The shapes file without the per-file value counts, one key per line so that diffs stay readable."""
    shapes = json.loads(source.read_text())
    missing = [entry for entry in SHAPE_ENTRIES if entry not in shapes]
    if missing:
        raise ValueError(f"{source} lacks {', '.join(missing)}")
    path.write_text(json.dumps({entry: shapes[entry] for entry in SHAPE_ENTRIES}, indent=1) + "\n")


def trim(parity_path: Path, out: Path) -> list[Path]:
    shapes_path = parity_path.parent / SHAPES
    missing = [str(p) for p in (parity_path, shapes_path) if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"not found: {', '.join(missing)}; pass the reference parity file")
    with np.load(parity_path) as data:
        arrays = trimmed_arrays({key: data[key] for key in data.files})
    out.mkdir(parents=True, exist_ok=True)
    write_npz(out / OUT_PARITY, arrays)
    write_shapes(shapes_path, out / OUT_SHAPES)
    return [out / OUT_PARITY, out / OUT_SHAPES]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parity", type=Path, nargs="?", default=DEFAULT_SHARED / PARITY)
    parser.add_argument("--out", type=Path, default=HERE, help="where to write (this folder by default)")
    args = parser.parse_args(argv)
    try:
        written = trim(args.parity, args.out)
    except (OSError, ValueError, KeyError) as error:
        print(f"trim: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
