"""Write the FOMM reference data the tests use from the shared originals, trimmed to what they need.

    python tests/fomm/reference/refresh.py [--shared ../shared/reference/fomm]

Run by hand from a checkout that has the shared reference folder beside it; the tests then read
only the files written here, so a clone of the repository alone passes them. The originals hold
four driving frames in two ``grid_sample`` variants (16 MB); the tests need the corner-aligned
variant on the first two frames (frame 0 is the initial frame of relative motion, frame 1 moves).
Kept arrays stay float32 at full resolution: parity is checked within 1e-4, and any rounding
of the expected values would eat into that margin.

The archive is written with fixed member dates, so that refreshing unchanged originals gives the
same bytes and leaves nothing for version control to report.
"""

import argparse
import io
import json
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_SHARED = HERE.parents[3] / "shared" / "reference" / "fomm"
PARITY = "vox256_parity.npz"
SHAPES = "vox256_state_shapes.json"
SCRIPT = "make_named_checkpoint.py"
VARIANT = "align_true"
FRAMES = 2
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
SCRIPT_HEADER = f"""\
# A copy of {SCRIPT} from the FOMM reference data (computed with the public
# first-order-model code, MIT licence), written by refresh.py beside it: the lines below this
# header are unchanged. Edit the original and run refresh.py rather than editing this copy.
# ruff: noqa
# fmt: off
"""


def trimmed_arrays(parity: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inputs cut to FRAMES driving frames, and VARIANT's keypoints and outputs for those frames."""
    driving = parity["inputs/driving"]
    if driving.ndim != 5 or driving.shape[2] < FRAMES:
        raise ValueError(f"inputs/driving has shape {driving.shape}; expected (B, C, T>={FRAMES}, H, W)")
    kept = {"inputs/source": parity["inputs/source"], "inputs/driving": driving[:, :, :FRAMES]}
    wanted_frames = {f"t{t}" for t in range(FRAMES)}
    for key, value in parity.items():
        parts = key.split("/")
        if parts[0] != VARIANT:
            continue
        if len(parts) == 2 or (len(parts) == 3 and parts[1] in wanted_frames):
            kept[key] = value
    for t in range(FRAMES):
        if not any(key.startswith(f"{VARIANT}/t{t}/") for key in kept):
            raise ValueError(f"the reference has no {VARIANT} outputs for driving frame {t}")
    for key, value in kept.items():
        if value.dtype != np.float32:
            raise ValueError(f"{key} is {value.dtype}, expected float32")
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


def refresh(shared: Path, out: Path) -> list[Path]:
    """Write the trimmed parity arrays, the shapes file and the named-weights script into ``out``."""
    missing = [name for name in (PARITY, SHAPES, SCRIPT) if not (shared / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{shared} lacks {', '.join(missing)}; pass --shared with the reference folder"
        )
    with np.load(shared / PARITY) as data:
        arrays = trimmed_arrays({key: data[key] for key in data.files})
    json.loads((shared / SHAPES).read_text())  # refuse to copy a damaged file
    out.mkdir(parents=True, exist_ok=True)
    write_npz(out / PARITY, arrays)
    shutil.copyfile(shared / SHAPES, out / SHAPES)
    original = (shared / SCRIPT).read_text()
    # The header goes after a "#!" line, which must stay first for the copy to run as a program.
    cut = original.index("\n") + 1 if original.startswith("#!") else 0
    (out / SCRIPT).write_text(original[:cut] + SCRIPT_HEADER + original[cut:])
    return [out / PARITY, out / SHAPES, out / SCRIPT]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the reference folder to read")
    parser.add_argument("--out", type=Path, default=HERE, help="where to write (this folder by default)")
    args = parser.parse_args(argv)
    try:
        written = refresh(args.shared, args.out)
    except (OSError, ValueError) as error:
        print(f"refresh: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
