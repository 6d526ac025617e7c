"""Editing a still portrait: turn the head, open or close the eyes and the mouth, get one picture.

This is LivePortrait's retargeting panel as a function. The photo is its own driving frame: its
keypoints are recomputed with the head pose changed by the requested angles, the eye and lip
retargeting networks add the deltas that give the eyes and the mouth a target openness, the
stitching network keeps the face attached to the rest of the picture, and the warping module and
decoder render the 512x512 face, which is pasted back into the whole photo.

    x_d = s · (kp · R(pitch + Δpitch, yaw + Δyaw, roll + Δroll) + δ) + (tx, ty, 0)
    x_d ← x_d + eye_delta(x_s, [c_eyes,s, c_eyes,target]) + lip_delta(x_s, [c_lip,s, c_lip,target])
    x_d ← stitch(x_s, x_d)
    picture = G(W(f_s; x_s, x_d))

Two choices differ from the public panel, both so that an edit of nothing gives back the photo's
own reconstruction G(W(f_s; x_s, x_s)): the public code adds the source's tz to every keypoint
(the animation path never does; here tz is left out as there), and it applies stitching even when
nothing changed (here an edit that changes nothing skips it; with the public weights stitching
two equal keypoint sets moves them by almost nothing anyway).

`PortraitEditor` does the once-per-photo work (face crop, appearance volume, keypoints, the
photo's eye and lip openness) so that each further edit costs only the motion maths, one warping
pass and one decoder pass.
"""

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from animatica.engines.liveportrait import LivePortraitEngine, LoadedNetworks, measure_openness, to_uint8
from animatica.errors import AnimaticaError
from animatica.face.portrait_crop import Framing, PasteBack, crop_portrait
from animatica.liveportrait import motion
from animatica.liveportrait.checkpoint import LivePortraitNetworks
from animatica.liveportrait.edit_options import PortraitEdit
from animatica.media.fit import fit_frame

INPUT_SIZE = 256  # what the appearance and motion networks take
# The public retargeting panel crops a little wider than the animation path (2.5 face sizes
# instead of 2.3), which leaves room for the turned head inside the crop.
EDIT_FRAMING = Framing(scale=2.5, vx=0.0, vy=-0.125, rotate=True)


class NoOpennessError(AnimaticaError):
    """Eye or lip openness was asked for but the photo's own could not be measured."""


def load_for_editing(
    checkpoint: str | Path | None,
    *,
    device: str = "auto",
    precision: str = "auto",
    checkpoints_dir: Path | None = None,
) -> LoadedNetworks:
    """The networks of a weight folder (a path, or a name under ``checkpoints_dir``) with their
    device and precision, on the speed path; the very networks the liveportrait engine uses in this
    process (loaded once), so a worker that animates and edits holds one copy of the 130 M weights."""
    return LivePortraitEngine.load(
        checkpoint, device=device, precision=precision, checkpoints_dir=checkpoints_dir
    ).loaded


def _device(networks: LivePortraitNetworks) -> torch.device:
    return next(networks.appearance.parameters()).device  # the speed path swaps only W and G


def _to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None].float() / 255


class PortraitEditor:
    """One photo, prepared once for any number of edits.

    ``crop``: find the face and crop around it as the public panel does, and paste every edit back
    into the whole photo; without it the photo must already be a square face crop (it is fitted
    to 256x256 for the networks) and an edit returns the 512x512 face.
    ``source_eyes`` (two ratios) and ``source_lips`` give the photo's own openness instead of
    measuring it on 68-point landmarks (needed only for eye / lip edits of a picture whose face
    the landmark model cannot find). ``dtype`` bfloat16 runs the decoder in bf16 (where the hardware
    has bf16 units, as the engine decides; see `LivePortraitNetworks.render`).
    """

    def __init__(
        self,
        networks: LivePortraitNetworks,
        image_rgb_uint8: np.ndarray,
        *,
        crop: bool = True,
        source_eyes: Sequence[float] | None = None,
        source_lips: float | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        image = np.ascontiguousarray(image_rgb_uint8)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB picture, got {image.shape} {image.dtype}")
        self.networks = networks
        self.device = _device(networks)
        self.dtype = dtype
        self.notes: list[str] = []
        self.paste_back: PasteBack | None = None
        eyes: np.ndarray | None = None
        lips: float | None = None
        if crop:
            cropped = crop_portrait(image, INPUT_SIZE, framing=EDIT_FRAMING, what="the picture")
            face = cropped.image
            self.paste_back = PasteBack(image, cropped.window)
            eyes = motion.eye_open_ratios(cropped.landmarks)
            lips = motion.lip_open_ratio(cropped.landmarks)
        else:
            if image.shape[0] != image.shape[1]:
                self.notes.append(
                    f"The picture is {image.shape[1]}x{image.shape[0]}, not square; "
                    "its centre square was used."
                )
            face = fit_frame(image, (INPUT_SIZE, INPUT_SIZE), "crop")
        self.face = face  # (256, 256, 3): what the networks see
        if source_eyes is not None:
            eyes = np.asarray([float(source_eyes[0]), float(source_eyes[1])], dtype=np.float32)
        if source_lips is not None:
            lips = float(source_lips)
        self._eyes, self._lips = eyes, lips
        self._measured = crop or (source_eyes is not None and source_lips is not None)
        with torch.inference_mode():
            pixels = _to_tensor(face, self.device)
            self.feature_3d = networks.appearance(pixels)  # (1, 32, 16, 64, 64)
            self.info = motion.keypoint_info(networks.motion(pixels))
            self.x_s = motion.transform_keypoints(self.info)  # (1, 21, 3)

    # --- the photo's own openness, where the sliders start -------------------------------------

    def _openness(self) -> tuple[np.ndarray | None, float | None]:
        if not self._measured:
            self._measured = True
            found = measure_openness(self.face, thorough=True)
            if found is not None:
                self._eyes = self._eyes if self._eyes is not None else np.asarray(found.eyes, np.float32)
                self._lips = self._lips if self._lips is not None else found.lip
        return self._eyes, self._lips

    @property
    def eye_ratio(self) -> float | None:
        """The photo's eye openness (mean of both eyes), as the eye slider counts it."""
        eyes = self._openness()[0]
        return None if eyes is None else float(np.mean(eyes))

    @property
    def lip_ratio(self) -> float | None:
        """The photo's lip openness, as the lip slider counts it."""
        return self._openness()[1]

    # --- one edit ------------------------------------------------------------------------------

    def keypoints(self, edit: PortraitEdit, *, stitching: bool = True) -> torch.Tensor:
        """The driving keypoints (1, 21, 3) of ``edit``: what the warping module receives."""
        if edit.is_identity:
            return self.x_s.clone()
        with torch.inference_mode():
            x_d = motion.edited_keypoints(self.info, edit.pitch, edit.yaw, edit.roll)
            if edit.eyes is not None:
                x_d = x_d + motion.eye_delta(self.networks.eye, self.x_s, self._eye_input(edit.eyes))
            if edit.lips is not None:
                x_d = x_d + motion.lip_delta(self.networks.lip, self.x_s, self._lip_input(edit.lips))
            if stitching:
                x_d = motion.stitch(self.networks.stitching, self.x_s, x_d)
        return x_d

    def _eye_input(self, target: float) -> torch.Tensor:
        eyes = self._openness()[0]
        if eyes is None:
            raise NoOpennessError(
                "no face was found in the picture to measure how open its eyes are, so they cannot be changed"
            )
        return motion.combined_eye_ratios(eyes, [target])

    def _lip_input(self, target: float) -> torch.Tensor:
        lips = self._openness()[1]
        if lips is None:
            raise NoOpennessError(
                "no face was found in the picture to measure how open its mouth is, so it cannot be changed"
            )
        return motion.combined_lip_ratios(lips, [target])

    def render(self, x_d: torch.Tensor) -> np.ndarray:
        """The 512x512 face (H, W, 3) uint8 for driving keypoints ``x_d`` (1, 21, 3)."""
        with torch.inference_mode():
            return to_uint8(self.networks.render(self.feature_3d, x_d.to(self.device), self.x_s, self.dtype))[
                0
            ]

    def edit(
        self, edit: PortraitEdit | None = None, *, stitching: bool = True, **values: float | None
    ) -> np.ndarray:
        """The edited picture: the whole photo with the face pasted back, or the 512x512 face
        without cropping. Pass a `PortraitEdit` or its fields (``pitch=10, eyes=0.1``)."""
        edit = edit if edit is not None else PortraitEdit(**values)  # type: ignore[arg-type]
        face = self.render(self.keypoints(edit, stitching=stitching))
        return self.paste_back(face) if self.paste_back is not None else face


def edit_portrait(
    networks: LivePortraitNetworks,
    image_rgb_uint8: np.ndarray,
    *,
    pitch: float = 0.0,
    yaw: float = 0.0,
    roll: float = 0.0,
    eye_open: float | None = None,
    lip_open: float | None = None,
    crop: bool = True,
    stitching: bool = True,
    source_eyes: Sequence[float] | None = None,
    source_lips: float | None = None,
) -> np.ndarray:
    """One edit of one photo (see `PortraitEditor`; keep an editor to edit the same photo again)."""
    editor = PortraitEditor(
        networks, image_rgb_uint8, crop=crop, source_eyes=source_eyes, source_lips=source_lips
    )
    edit = PortraitEdit(pitch=pitch, yaw=yaw, roll=roll, eyes=eye_open, lips=lip_open)
    return editor.edit(edit, stitching=stitching)


def write_png(picture: np.ndarray, path: Path) -> None:
    """Write ``picture`` as a PNG at ``path`` whole or not at all (a temporary file renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".edit-", suffix=".png")
    os.close(handle)
    try:
        Image.fromarray(picture).save(temporary, format="PNG")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
