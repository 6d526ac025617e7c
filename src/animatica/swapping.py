"""A face swap as a pipeline request: the photo lends its face, the video is the picture kept.

The swap runs through the same streaming pipeline as an animation (``pipeline.animate``): the
photo is the pipeline's ``source``, the video its ``driving`` clip, the engine a swap engine
(``engines``' ``kind``). So decoding, encoding, the video's sound, progress, cancelling, plan
limits, prepared states and segments are all the pipeline's, and a swap job only needs this
request. Everything an engine needs goes into its options as plain data, checked here before
any frame is read: the face choice, the reference person's identity (an embedding computed
from the reference photo, so the job never carries that photo), the video's frame rate (what
the landmark smoothing is tuned to).

Every swap says that it is synthetic, wherever it runs: its MP4 carries ``SWAP_METADATA`` as
container tags (``comment`` and ``description``; a frame folder carries them as PNG text), with
no way to turn that off, and unless the operator turns it off (``ANIMATICA_SWAP_VISIBLE_WATERMARK``)
every frame carries ``VISIBLE_MARK`` in a corner.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from animatica.engines import DEFAULT_SWAP_ENGINE, ONNX_SWAP_ENGINE, choose_engine
from animatica.errors import AnimaticaError
from animatica.media.limits import MediaLimits
from animatica.pipeline import AnimationRequest

if TYPE_CHECKING:
    from animatica.face.onnx_swap import SwapModelFiles

SYNTHETIC_NOTE = "Generated with Animatica face swap — synthetic media"
SWAP_METADATA: dict[str, str] = {"comment": SYNTHETIC_NOTE, "description": SYNTHETIC_NOTE}
VISIBLE_MARK = "AI-generated"


def watermarks(visible: bool) -> dict[str, Any]:
    """The `AnimationRequest` fields that mark a swap's output as generated (the tags always)."""
    return {"metadata": dict(SWAP_METADATA), "visible_mark": VISIBLE_MARK if visible else None}


@dataclass(frozen=True)
class SwapSettings:
    """How to swap: which faces, how to blend, what to keep of the video's faces."""

    which: str = "largest"  # see face.tracks.FaceChoice
    engine: str = "auto"  # a swap engine, or auto (the default one)
    blend: str = "poisson"  # face.swap.BLENDS
    keep_eyes: bool = True
    keep_mouth: bool = True
    smoothing: float = 0.5
    reference_threshold: float = 0.6
    visible_watermark: bool = True  # the operator's ANIMATICA_SWAP_VISIBLE_WATERMARK


def swap_options(
    settings: SwapSettings,
    *,
    reference: Path | None,
    fps: float | None,
    limits: MediaLimits,
    engine: str | None = None,
) -> dict[str, Any]:
    """The swap engine's options (plain data) for ``settings``; the reference photo is read here.

    ``engine`` is the concrete engine they are for (None: the one ``settings.engine`` names, with
    no ONNX models): the blend and what to keep of the video's face are the weights-free engine's
    own, a model paints the whole face itself.
    """
    from animatica.face.analyzer import get_analyzer
    from animatica.face.tracks import FaceChoice, reference_embedding
    from animatica.media.reader import read_image

    choice = FaceChoice.parse(settings.which)
    if choice.mode == "reference" and reference is None:
        raise AnimaticaError("--which reference needs --reference: a photo of the person to replace.")
    if choice.mode != "reference" and reference is not None:
        raise AnimaticaError("--reference is for --which reference; leave it out or add --which reference.")
    options: dict[str, Any] = {
        "which": str(choice),
        "smoothing": settings.smoothing,
        "reference_threshold": settings.reference_threshold,
    }
    if (engine or choose_engine(settings.engine, None, kind="swap")) == DEFAULT_SWAP_ENGINE:
        options.update(blend=settings.blend, keep_eyes=settings.keep_eyes, keep_mouth=settings.keep_mouth)
    if fps:
        options["fps"] = float(fps)
    if reference is not None:
        image = read_image(reference, limits)
        embedding = reference_embedding(image, get_analyzer(), f"the reference photo {Path(reference).name}")
        options["reference"] = [float(v) for v in embedding]
    return options


def swap_request(
    face: Path,
    video: Path,
    output: Path | str,
    settings: SwapSettings = SwapSettings(),
    *,
    reference: Path | None = None,
    limits: MediaLimits | None = None,
    batch_size: int = 8,
    max_frames: int | None = None,
    model_files: "SwapModelFiles | None" = None,
) -> AnimationRequest:
    """The pipeline request that puts the face of the photo ``face`` into ``video``.

    ``model_files`` are the operator's ONNX swap models (settings ``swap_model`` and
    ``swap_identity_model``): with both, ``auto`` is the ``faceswap-onnx`` engine that runs them.
    """
    from animatica.media.probe import probe, require_video

    limits = limits or MediaLimits()
    models = model_files.configured if model_files is not None else False
    engine = choose_engine(settings.engine, ONNX_SWAP_ENGINE if models else None, kind="swap")
    info = require_video(probe(Path(video), limits))
    options = swap_options(settings, reference=reference, fps=info.fps, limits=limits, engine=engine)
    if engine == ONNX_SWAP_ENGINE and model_files is not None:
        options.update(model_files.engine_options())  # where the files are: this machine's, not the job's
    # Checked now rather than on the first frame: a wrong option must cost nothing.
    from animatica.engines import load_engine

    load_engine(engine, **options)
    return AnimationRequest(
        source=Path(face),
        driving=Path(video),
        output=output,
        engine=engine,
        batch_size=batch_size,
        engine_options=options,
        limits=limits,
        max_frames=max_frames,
        **watermarks(settings.visible_watermark),
    )
