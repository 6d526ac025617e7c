"""Where LivePortrait weights live: the public folder layout and how a name or path finds it.

Kept free of torch so that the web process can say whether the engine is available (the Create
and Edit pages ask on every view) without importing the networks.
"""

from pathlib import Path

from animatica.errors import CheckpointError

DEFAULT_NAME = "liveportrait"  # a bare name is a folder under the caller's checkpoints folder

# File of each base network, relative to the weight folder.
BASE_FILES = {
    "appearance": "base_models/appearance_feature_extractor.pth",
    "motion": "base_models/motion_extractor.pth",
    "warping": "base_models/warping_module.pth",
    "decoder": "base_models/spade_generator.pth",
}
RETARGETING_FILE = "retargeting_models/stitching_retargeting_module.pth"
# Entry of each retargeting network in RETARGETING_FILE.
RETARGETING_ENTRIES = {"stitching": "retarget_shoulder", "eye": "retarget_eye", "lip": "retarget_mouth"}
WEIGHT_FILES = (*BASE_FILES.values(), RETARGETING_FILE)
WEIGHTS_HINT = (
    "download the LivePortrait weights (the pretrained_weights/liveportrait folder of the "
    "github.com/KwaiVGI/LivePortrait release, also on huggingface.co/KwaiVGI/LivePortrait) and put "
    "base_models/ and retargeting_models/ under $ANIMATICA_HOME/checkpoints/liveportrait/, "
    "or pass their folder with --checkpoint DIR"
)


class WeightsError(CheckpointError):
    """LivePortrait weights that are missing, unreadable or of another shape than the networks."""


def find_weights_dir(path: str | Path) -> Path:
    """The folder holding ``base_models/`` and ``retargeting_models/`` with all five weight files.

    ``path`` may be that folder or the one above it (``pretrained_weights/``, holding
    ``liveportrait/``). Anything missing is one error listing every missing file.
    """
    folder = Path(path).expanduser()
    if not folder.exists():
        raise WeightsError(f"LivePortrait weight folder {folder} not found; {WEIGHTS_HINT}")
    if not folder.is_dir():
        raise WeightsError(f"LivePortrait weights: {folder} is not a folder; {WEIGHTS_HINT}")
    candidates = [folder, folder / "liveportrait"]
    for candidate in candidates:
        if all((candidate / name).is_file() for name in WEIGHT_FILES):
            return candidate
    # Report against the level that holds some of the layout, else against the folder given.
    partial = [c for c in candidates if (c / "base_models").is_dir() or (c / "retargeting_models").is_dir()]
    where = partial[0] if partial else folder
    missing = [str(where / name) for name in WEIGHT_FILES if not (where / name).is_file()]
    raise WeightsError(f"LivePortrait weights incomplete, missing {', '.join(missing)}; {WEIGHTS_HINT}")


def resolve_weights(checkpoint: str | Path | None, checkpoints_dir: Path | None = None) -> Path:
    """The weight folder: a path, or a bare name looked up in ``checkpoints_dir`` (default ``liveportrait``).

    The folder may hold ``base_models/`` and ``retargeting_models/`` or a ``liveportrait/`` folder
    with them (the public ``pretrained_weights/`` layout); `find_weights_dir` names what is missing.
    """
    wanted = str(checkpoint) if checkpoint else DEFAULT_NAME
    path = Path(wanted).expanduser()
    if not path.exists() and len(path.parts) == 1 and checkpoints_dir is not None:
        path = Path(checkpoints_dir) / wanted
    return find_weights_dir(path)
