"""A LivePortrait weight folder of empty files in the public layout: enough for a server to offer
the engine and queue its jobs (it checks that the files are there), not to run them. Torch-free, for
tests of pages and requests whose worker is off."""

from pathlib import Path

from animatica.liveportrait.layout import WEIGHT_FILES


def write_placeholder_weights(folder: Path) -> Path:
    for name in WEIGHT_FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"")
    return folder
