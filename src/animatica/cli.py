"""The ``animatica`` command. Thin: every command calls a plain function and formats its result.

A user-caused problem (``AnimaticaError``) is printed as one line on stderr with exit code 2 and
no traceback; anything else is a bug and keeps its traceback.
"""

import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer

from animatica.errors import AnimaticaError

# Options several commands share, worded once.
DeviceOption = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
PrecisionOption = Annotated[str, typer.Option(help="auto, fp32 or bf16.")]

app = typer.Typer(
    help="Animatica: bring a still picture to life with the motion of a driving video.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
checkpoint_app = typer.Typer(help="Inspect FOMM checkpoints.", no_args_is_help=True)
app.add_typer(checkpoint_app, name="checkpoint")
users_app = typer.Typer(help="Administer the service's user accounts.", no_args_is_help=True)
app.add_typer(users_app, name="users")
data_app = typer.Typer(help="Training data.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"animatica: error: {message}", err=True)
    raise typer.Exit(code)


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn an ``AnimaticaError`` into one line on stderr and exit code 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AnimaticaError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            fail("interrupted; nothing was written", code=130)

    return wrapper


def _settings(torch_threads: bool = False) -> Any:
    """This command's settings, read here and handed down; with ``torch_threads``, torch also gets
    the configured thread count for the whole command (0 leaves torch's own default)."""
    from animatica.settings import get_settings

    settings = get_settings()
    if torch_threads:
        from animatica.device import use_threads

        use_threads(settings.torch_threads)
    return settings


class _ProgressBar:
    """A tqdm bar on stderr fed by the pipeline's progress events (frames, fps, ETA)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar: Any = None

    def __call__(self, progress: Any) -> None:
        if not self.enabled:
            return
        if progress.stage == "animate":
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=progress.total, unit="frame", dynamic_ncols=True, file=sys.stderr)
            self.bar.update(progress.done - self.bar.n)
        elif progress.stage in ("load", "prepare"):
            typer.echo(f"{progress.stage}…", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _run_and_report(request: Any, quiet: bool) -> None:
    """Run a pipeline request with a progress bar on a terminal, then say what was written."""
    from animatica.pipeline import animate as run

    bar = _ProgressBar(enabled=not quiet and sys.stderr.isatty())
    try:
        result = run(request, on_progress=bar)
    finally:
        bar.close()
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(
        f"wrote {result.output} ({result.frames} frames at {result.fps:g} fps"
        f"{', with audio' if result.has_audio else ''}) in {result.seconds:.1f} s"
    )


def _liveportrait_options(
    engine: str, region: str, stitching: bool, multiplier: float, eyes: bool, lips: bool
) -> dict[str, Any]:
    """The liveportrait engine's motion switches; refused for another engine rather than ignored."""
    given = {
        "region": region,
        "stitching": stitching,
        "driving_multiplier": multiplier,
        "eye_retargeting": eyes,
        "lip_retargeting": lips,
    }
    defaults = {"region": "all", "stitching": True, "driving_multiplier": 1.0}
    changed = {key: value for key, value in given.items() if value != defaults.get(key, False)}
    if engine != "liveportrait":
        if changed:
            flags = ", ".join("--" + key.replace("_", "-") for key in changed)
            raise AnimaticaError(
                f"{flags}: only the liveportrait engine has these (use --engine liveportrait)"
            )
        return {}
    from animatica.liveportrait.motion import MotionOptions

    MotionOptions(**given)  # an unknown region is refused before anything is read
    return given


def _vaegan_options(engine: str, strength: float, keep_detail: bool) -> dict[str, Any]:
    """The vaegan engine's options; refused for another engine rather than ignored."""
    if engine != "vaegan":
        if strength != 1.0 or keep_detail:
            raise AnimaticaError("--strength and --keep-detail are vaegan options (use --engine vaegan)")
        return {}
    return {"strength": strength, "keep_detail": keep_detail}


@app.command()
@user_errors
def animate(
    source: Annotated[Path, typer.Option("--source", "-s", help="Source image (jpg, png, webp).")],
    driving: Annotated[Path, typer.Option("--driving", "-d", help="Driving video or folder of PNG frames.")],
    output: Annotated[  # a string: a Path would drop the trailing "/" that asks for PNG frames
        str, typer.Option("--output", "-o", help="Output .mp4, or a folder (ending in /) for PNG frames.")
    ],
    engine: Annotated[
        str,
        typer.Option(
            help="auto (fomm with a checkpoint, else landmarks), fomm, landmarks, liveportrait or vaegan."
        ),
    ] = "auto",
    checkpoint: Annotated[
        str | None,
        typer.Option(
            help="FOMM or vaegan checkpoint (a path or a shipped name; vaegan: vaegan-demo by default), "
            "or the LivePortrait weight folder (default: $ANIMATICA_HOME/checkpoints/liveportrait)."
        ),
    ] = None,
    config: Annotated[
        str | None, typer.Option(help="FOMM config: a YAML path or a built-in name (e.g. vox-256).")
    ] = None,
    relative: Annotated[
        bool, typer.Option("--relative/--absolute", help="Relative (default) or absolute motion.")
    ] = True,
    adapt_scale: Annotated[
        bool, typer.Option("--adapt-scale", help="Scale the motion by the faces' size ratio.")
    ] = False,
    region: Annotated[
        str, typer.Option(help="liveportrait: the animated region, all, exp, pose, lips or eyes.")
    ] = "all",
    stitching: Annotated[
        bool, typer.Option("--stitching/--no-stitching", help="liveportrait: the stitching network (on).")
    ] = True,
    driving_multiplier: Annotated[
        float, typer.Option(help="liveportrait: more (> 1) or less (< 1) of the driving motion.")
    ] = 1.0,
    eye_retargeting: Annotated[
        bool,
        typer.Option(
            "--eye-retargeting", help="liveportrait: eye openness from the driving face's landmarks."
        ),
    ] = False,
    lip_retargeting: Annotated[
        bool,
        typer.Option(
            "--lip-retargeting", help="liveportrait: lip openness from the driving face's landmarks."
        ),
    ] = False,
    strength: Annotated[
        float, typer.Option(help="vaegan: scale of the driving clip's latent differences (1: as driven).")
    ] = 1.0,
    keep_detail: Annotated[
        bool,
        typer.Option(
            "--keep-detail", help="vaegan: add the decoded change to the photo instead of the decoded face."
        ),
    ] = False,
    best_frame: Annotated[int | None, typer.Option(help="Measure motion from driving frame N.")] = None,
    find_best_frame: Annotated[
        bool,
        typer.Option(
            "--find-best-frame",
            help="Start from the driving frame whose face pose is closest to the source's.",
        ),
    ] = False,
    crop_face: Annotated[
        bool | None,
        typer.Option(
            "--crop-face/--no-crop",
            help="Crop both inputs around the face first (default: on for liveportrait, off otherwise).",
        ),
    ] = None,
    paste_back: Annotated[
        bool | None,
        typer.Option(
            "--paste-back/--no-paste-back",
            help="Put the animated face crop back into the full photo (default: on when cropping for "
            "liveportrait); photos are capped at 1920 px per side.",
        ),
    ] = None,
    fit: Annotated[
        str, typer.Option(help="Fitting inputs to the model size: crop, pad or stretch.")
    ] = "crop",
    device: DeviceOption = "auto",
    batch_size: Annotated[int, typer.Option(help="Driving frames per forward pass.")] = 4,
    precision: PrecisionOption = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Animate SOURCE with the motion of DRIVING and write OUTPUT."""
    from animatica.media.fit import FIT_MODES
    from animatica.media.limits import MediaLimits
    from animatica.pipeline import AnimationRequest

    if fit not in FIT_MODES:
        raise AnimaticaError(f"--fit must be one of {', '.join(FIT_MODES)}, not '{fit}'")
    from animatica.engines import choose_engine

    choose_engine(engine, checkpoint, kind="animation")  # a face-swap engine is refused by name
    lp_options = _liveportrait_options(
        engine, region, stitching, driving_multiplier, eye_retargeting, lip_retargeting
    )
    lp_options.update(_vaegan_options(engine, strength, keep_detail))
    settings = _settings(torch_threads=True)
    request = AnimationRequest(
        source=source, driving=driving, output=output, engine=engine, checkpoint=checkpoint, config=config,
        relative=relative, adapt_scale=adapt_scale, best_frame=best_frame, find_best_frame=find_best_frame,
        crop_face=crop_face, paste_back=paste_back, fit=fit, device=device, precision=precision,
        batch_size=batch_size, limits=MediaLimits.from_settings(settings),
        checkpoints_dir=settings.checkpoints_dir, engine_options=lp_options,
    )  # fmt: skip
    _run_and_report(request, quiet)


@app.command()
@user_errors
def swap(
    face: Annotated[Path, typer.Option("--face", "-f", help="Photo of the face to put in (one person).")],
    video: Annotated[
        Path, typer.Option("--video", "-v", help="Video whose face is replaced (or PNG frames).")
    ],
    output: Annotated[
        str, typer.Option("--output", "-o", help="Output .mp4, or a folder (ending in /) for PNG frames.")
    ],
    which: Annotated[
        str,
        typer.Option(
            help="Which faces of the video: largest (default), all, index:N (N-th from the left, from 0) "
            "or reference (the person in --reference)."
        ),
    ] = "largest",
    reference: Annotated[
        Path | None,
        typer.Option(help="With --which reference: a photo of the person in the video to replace."),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="auto, faceswap (no model weights) or faceswap-onnx (your own ONNX models, set in "
            "ANIMATICA_SWAP_MODEL and ANIMATICA_SWAP_IDENTITY_MODEL; auto uses them when both are set)."
        ),
    ] = "auto",
    blend: Annotated[
        str, typer.Option(help="poisson (seamless, default) or feather (a soft edge only).")
    ] = "poisson",
    keep_eyes: Annotated[
        bool,
        typer.Option(
            "--keep-eyes/--swap-eyes", help="Keep the video's own eyes (gaze, blinks), or take the photo's."
        ),
    ] = True,
    keep_mouth: Annotated[
        bool,
        typer.Option("--keep-mouth/--swap-mouth", help="Keep the video's own open mouth (teeth, tongue)."),
    ] = True,
    smoothing: Annotated[float, typer.Option(help="Landmark smoothing over time, 0 (none) to 1.")] = 0.5,
    batch_size: Annotated[int, typer.Option(help="Frames per chunk.")] = 8,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Put the face from FACE into VIDEO and write OUTPUT (the video's sound is kept).

    The output is marked as generated: MP4 tags always, and an "AI-generated" label in a corner
    unless ANIMATICA_SWAP_VISIBLE_WATERMARK=false.
    """
    from animatica.media.limits import MediaLimits
    from animatica.swapping import SwapSettings, swap_request

    settings = _settings(torch_threads=True)
    choice = SwapSettings(
        which=which,
        engine=engine,
        blend=blend,
        keep_eyes=keep_eyes,
        keep_mouth=keep_mouth,
        smoothing=smoothing,
        visible_watermark=settings.swap_visible_watermark,
    )
    request = swap_request(
        face, video, output, choice, reference=reference, limits=MediaLimits.from_settings(settings),
        batch_size=batch_size, model_files=settings.swap_model_files,
    )  # fmt: skip
    _run_and_report(request, quiet)


@app.command("evaluate-swap")
@user_errors
def evaluate_swap(
    face: Annotated[Path, typer.Option("--face", "-f", help="Photo of the face to put in (one person).")],
    video: Annotated[Path, typer.Option("--video", "-v", help="The original video.")],
    output: Annotated[str, typer.Option("--output", "-o", help="Where the swapped video is written (.mp4).")],
    which: Annotated[str, typer.Option(help="As for swap.")] = "largest",
    blend: Annotated[str, typer.Option(help="As for swap.")] = "poisson",
    identity_every: Annotated[int, typer.Option(help="Embed identities on every N-th frame.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON line.")] = False,
) -> None:
    """Swap, then measure: identity distance to the photo and to the original actor, expression
    correlation with the original, landmark jitter of both (lower distance = more alike)."""
    from animatica.face.swap_quality import swap_quality
    from animatica.media.limits import MediaLimits
    from animatica.media.reader import iter_frames, read_image
    from animatica.pipeline import animate as run
    from animatica.swapping import SwapSettings, swap_request

    settings = _settings(torch_threads=True)
    limits = MediaLimits.from_settings(settings)
    choice = SwapSettings(which=which, blend=blend, visible_watermark=settings.swap_visible_watermark)
    request = swap_request(face, video, output, choice, limits=limits, model_files=settings.swap_model_files)
    result = run(request)
    report = swap_quality(
        read_image(face, limits),
        iter_frames(video, limits=limits),
        iter_frames(Path(output), limits=limits),
        identity_every=max(1, identity_every),
    ).to_dict()
    report["seconds"] = round(result.seconds, 2)
    if as_json:
        typer.echo(json.dumps(report))
        return
    for key, value in report.items():
        typer.echo(f"{key}: {value}")


@app.command()
@user_errors
def edit(
    source: Annotated[Path, typer.Option("--source", "-s", help="The photo to edit (jpg, png, webp).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The edited picture (.png).")],
    checkpoint: Annotated[
        str | None,
        typer.Option(help="LivePortrait weight folder (default: $ANIMATICA_HOME/checkpoints/liveportrait)."),
    ] = None,
    pitch: Annotated[float, typer.Option(help="Degrees added to the head's pitch (-20 to 20).")] = 0.0,
    yaw: Annotated[float, typer.Option(help="Degrees added to the head's yaw (-30 to 30).")] = 0.0,
    roll: Annotated[float, typer.Option(help="Degrees added to the head's roll (-20 to 20).")] = 0.0,
    eyes: Annotated[
        float | None, typer.Option(help="Target eye-open ratio, 0 (closed) to 0.8; absent keeps the eyes.")
    ] = None,
    lips: Annotated[
        float | None, typer.Option(help="Target lip-open ratio, 0 (closed) to 0.8; absent keeps the mouth.")
    ] = None,
    crop: Annotated[
        bool,
        typer.Option(
            "--crop/--no-crop",
            help="Find the face and paste the edit back into the photo (default), or take a photo "
            "already cropped square to the face and write the 512x512 face.",
        ),
    ] = True,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
) -> None:
    """Turn the head and open or close the eyes and mouth of one photo (LivePortrait)."""
    import time

    from animatica.liveportrait.edit_options import PortraitEdit
    from animatica.media.limits import MediaLimits
    from animatica.media.reader import read_image

    changes = PortraitEdit(pitch=pitch, yaw=yaw, roll=roll, eyes=eyes, lips=lips)  # checked before loading
    if output.suffix.lower() != ".png":
        raise AnimaticaError(f"--output must end in .png, not {output.name!r}")
    settings = _settings(torch_threads=True)
    picture = read_image(source, MediaLimits.from_settings(settings))
    from animatica.liveportrait.editing import PortraitEditor, load_for_editing, write_png

    started = time.perf_counter()
    loaded = load_for_editing(
        checkpoint, device=device, precision=precision, checkpoints_dir=settings.checkpoints_dir
    )
    editor = PortraitEditor(loaded.networks, picture, crop=crop, dtype=loaded.dtype)
    write_png(editor.edit(changes), output)
    for note in editor.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(f"wrote {output} in {time.perf_counter() - started:.1f} s")


@app.command()
@user_errors
def live(
    source: Annotated[Path, typer.Option("--source", "-s", help="The portrait to animate (jpg, png, webp).")],
    driving: Annotated[
        Path | None, typer.Option("--driving", "-d", help="A video played in real time as the camera.")
    ] = None,
    camera: Annotated[int | None, typer.Option(help="A local camera number (0 for /dev/video0).")] = None,
    engine: Annotated[
        str, typer.Option(help="landmarks (fast on CPU), fomm, liveportrait or auto.")
    ] = "landmarks",
    checkpoint: Annotated[
        str | None, typer.Option(help="FOMM checkpoint, or the LivePortrait weight folder.")
    ] = None,
    size: Annotated[int, typer.Option(help="Side of the animated frames in pixels.")] = 256,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also save the session as an .mp4.")
    ] = None,
    seconds: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    server: Annotated[
        str | None, typer.Option(help="Run through an Animatica server's live API at this URL instead.")
    ] = None,
    token: Annotated[str | None, typer.Option(help="API token for --server.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON line with the session's figures.")
    ] = False,
) -> None:
    """Animate SOURCE in real time from a camera or a video played at its frame rate (Ctrl+C stops).

    JSON: engine, fps (animated frames per second), delay_ms_p50 and delay_ms_p95 (capture, or a
    video frame's due time, to its animated frame being ready), dropped, frames, seconds, size, cpu.
    """
    if (driving is None) == (camera is None):
        raise AnimaticaError("give either --driving VIDEO or --camera N")
    if seconds is not None and seconds <= 0:
        raise AnimaticaError("--seconds must be positive")
    from animatica.live.sources import Camera, PacedFile, camera_device, run_local

    if camera is not None:
        camera_device(camera)  # a missing camera is said before the engine loads
    settings = _settings(torch_threads=True)
    from animatica.engines import choose_engine, load_engine
    from animatica.media.limits import MediaLimits
    from animatica.media.reader import read_image

    limits = MediaLimits.from_settings(settings)
    name = choose_engine(engine, checkpoint, kind="animation")
    if server is not None:
        result = _live_through_server(server, token, source, driving, camera, name, size, seconds, output)
    else:
        picture = read_image(source, limits)
        frames = PacedFile(driving, limits=limits) if driving is not None else Camera(camera or 0)
        options: dict[str, Any] = {"checkpoint": checkpoint}
        if name == "landmarks":
            options = {"source_name": source.name}
        else:
            options["checkpoints_dir"] = settings.checkpoints_dir
        loaded = load_engine(name, **options)
        result = run_local(loaded, picture, frames, size=size, seconds=seconds, output=output, limits=limits)
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(
        f"{result['engine']}: {result['frames']} frames at {result['fps']:g} fps, delay "
        f"{result['delay_ms_p50']} ms (p50) / {result['delay_ms_p95']} ms (p95), "
        f"{result['dropped']} dropped, {result['seconds']:g} s at {result['size']}x{result['size']}"
    )
    if output is not None:
        typer.echo(f"wrote {output}")


def _live_through_server(
    server: str,
    token: str | None,
    source: Path,
    driving: Path | None,
    camera: int | None,
    engine: str,
    size: int,
    seconds: float | None,
    output: Path | None,
) -> dict[str, Any]:
    """The same session through a server's live WebSocket API (the loopback benchmark)."""
    if output is not None:
        raise AnimaticaError("--output records a local session; with --server, the server records it")
    try:
        from animatica.live.client import LiveClient
    except ImportError as exc:
        raise AnimaticaError("--server needs the live client, which this installation lacks") from exc
    from animatica.live.sources import Camera
    from animatica.media.probe import probe, require_video
    from animatica.media.reader import iter_frames

    client = LiveClient(server, token=token)
    client.create_session(source, engine=engine, size=size)
    if driving is not None:
        fps = require_video(probe(driving)).fps or 25.0
        return client.run(iter_frames(driving), fps=float(fps), seconds=seconds)
    frames = Camera(camera or 0)
    try:
        # fps=None: a camera paces itself; due times at its nominal rate would drift from a
        # camera slightly slower than that until every frame counted as late.
        return client.run((f.image for f in frames), fps=None, seconds=seconds)
    finally:
        frames.close()


@app.command()
@user_errors
def bench(
    engine: Annotated[str, typer.Option(help="fomm, landmarks or liveportrait (random weights).")] = "fomm",
    size: Annotated[int, typer.Option(help="Frame size (square).")] = 256,
    frames: Annotated[int, typer.Option(help="Driving frames to time (liveportrait: best-of rounds).")] = 16,
    batch_size: Annotated[int, typer.Option(help="Driving frames per forward pass.")] = 4,
    checkpoint: Annotated[
        str | None, typer.Option(help="FOMM checkpoint; random vox-256 weights when absent.")
    ] = None,
    config: Annotated[str, typer.Option(help="FOMM config for random weights.")] = "vox-256",
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line.")] = False,
) -> None:
    """Time an engine on synthetic frames (JSON: ms_per_frame, engine, size, precision, device)."""
    from animatica.bench import run_bench

    settings = _settings(torch_threads=True)
    result = run_bench(
        engine, size, frames, batch_size, checkpoint, config, device, precision, settings.checkpoints_dir
    )
    if as_json:
        typer.echo(json.dumps(result))
    else:
        for key, value in result.items():
            typer.echo(f"{key}: {value}")


@app.command()
@user_errors
def morph(
    first: Annotated[Path, typer.Argument(help="Photo of the first face.")],
    second: Annotated[Path, typer.Argument(help="Photo of the second face.")],
    output: Annotated[
        str, typer.Option("--output", "-o", help="Output .mp4, or a folder (ending in /) for PNG frames.")
    ],
    checkpoint: Annotated[
        str | None, typer.Option(help="vaegan checkpoint: a path or a name (default: vaegan-demo).")
    ] = None,
    frames: Annotated[int, typer.Option(help="Frames from the first face to the second.")] = 48,
    fps: Annotated[float, typer.Option(help="Frame rate of the video.")] = 24.0,
    method: Annotated[str, typer.Option(help="slerp (default) or linear interpolation.")] = "slerp",
    size: Annotated[
        int, typer.Option(help="Side of the written frames (the model's output is enlarged).")
    ] = 256,
    crop_face: Annotated[
        bool | None,
        typer.Option(
            "--crop-face/--no-crop",
            help="Crop each photo around its face (default: when it is larger than the model's input "
            "and shows a face).",
        ),
    ] = None,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
) -> None:
    """Morph the face in FIRST into the face in SECOND through the vaegan engine's latent space."""
    from animatica.engines.vaegan import VaeganEngine
    from animatica.media.limits import MediaLimits
    from animatica.media.reader import read_image
    from animatica.media.writer import check_writable, open_writer
    from animatica.vaegan.morph import check_morph, enlarge, face_input, morph_frames

    if not 16 <= size <= 2048:
        raise AnimaticaError(f"--size must be between 16 and 2048, got {size}")
    if not fps > 0:
        raise AnimaticaError(f"--fps must be positive, got {fps}")
    check_morph(frames, method)  # refused before anything is read
    settings = _settings(torch_threads=True)
    check_writable(output)
    limits = MediaLimits.from_settings(settings)
    engine = VaeganEngine.load(checkpoint, device, precision, checkpoints_dir=settings.checkpoints_dir)
    side = engine.networks.config.size
    faces = [face_input(read_image(Path(p), limits), side, crop_face) for p in (first, second)]
    with open_writer(output, fps) as writer:
        for frame in morph_frames(engine, faces[0], faces[1], frames, method):
            writer.write(enlarge(frame, size))
    typer.echo(f"wrote {output} ({frames} frames, {method})")


@checkpoint_app.command("inspect")
@user_errors
def checkpoint_inspect(
    checkpoint: Annotated[str, typer.Argument(help="Checkpoint path or shipped name.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """What a checkpoint holds and which built-in configs fit it."""
    from animatica.fomm.inspect import inspect_checkpoint

    report = inspect_checkpoint(checkpoint, _settings().checkpoints_dir)
    if as_json:
        typer.echo(json.dumps(report))
        return
    for key, value in report.items():
        typer.echo(f"{key}: {value}")


@app.command()
@user_errors
def demo(
    output: Annotated[Path | None, typer.Option(help="Where to write the demo animation.")] = None,
    engine: Annotated[str, typer.Option(help="Engine for the demo.")] = "auto",
    checkpoint: Annotated[str | None, typer.Option(help="FOMM checkpoint for the demo.")] = None,
) -> None:
    """Animate the demo photo with a generated driving video (no downloads) and say where the result is."""
    from animatica.demo import write_demo_inputs
    from animatica.media.limits import MediaLimits
    from animatica.pipeline import AnimationRequest
    from animatica.pipeline import animate as run

    settings = _settings(torch_threads=True)
    folder = settings.home / "demo"
    source, driving = write_demo_inputs(folder)
    target = output or folder / "animation.mp4"
    bar = _ProgressBar(enabled=sys.stderr.isatty())
    request = AnimationRequest(
        source=source, driving=driving, output=target, engine=engine, checkpoint=checkpoint,
        limits=MediaLimits.from_settings(settings), checkpoints_dir=settings.checkpoints_dir,
    )  # fmt: skip
    try:
        result = run(request, on_progress=bar)
    finally:
        bar.close()
    typer.echo(f"demo source:  {source}\ndemo driving: {driving}\nanimation:    {result.output}")


@app.command()
@user_errors
def crop(
    input: Annotated[Path, typer.Argument(help="A driving video (or folder of frames) or a photo.")],
    output: Annotated[Path, typer.Argument(help="Output .mp4 / folder for a video, .png/.jpg for a photo.")],
    framing: Annotated[
        str,
        typer.Option(
            help="plain: a square around the face box; liveportrait or vaegan: the crop that engine "
            "animates (liveportrait: 2.3 faces turned upright for a photo, 2.2 faces for a video)."
        ),
    ] = "plain",
    size: Annotated[
        int | None, typer.Option(help="Side of the square output (256; 512 with --framing liveportrait).")
    ] = None,
    scale: Annotated[
        float | None, typer.Option(help="Crop side relative to the face box (1.8, or the framing's).")
    ] = None,
    offset_x: Annotated[
        float | None, typer.Option(help="Horizontal shift of the crop centre (crop sides; 0).")
    ] = None,
    offset_y: Annotated[
        float | None, typer.Option(help="Vertical shift of the crop centre (crop sides, <0 up; -0.1).")
    ] = None,
    face_index: Annotated[int | None, typer.Option(help="Which face, counted from the left.")] = None,
) -> None:
    """Crop a video (a smoothed face track) or a photo to a square around the face."""
    from animatica.face.crop import crop_file
    from animatica.media.limits import MediaLimits

    frames = crop_file(
        input, output, framing=framing, size=size, scale=scale, offset=(offset_x, offset_y),
        face_index=face_index, limits=MediaLimits.from_settings(_settings()),
    )  # fmt: skip
    typer.echo(f"wrote {output}" if frames is None else f"wrote {output} ({frames} frames)")


@data_app.command("synth")
@user_errors
def data_synth(
    out: Annotated[Path, typer.Option(help="Dataset folder to write (train/ and test/ inside).")],
    videos: Annotated[int, typer.Option(help="Training clips.")] = 200,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same data.")] = 0,
    size: Annotated[int, typer.Option(help="Frame side in pixels.")] = 64,
    frames: Annotated[int, typer.Option(help="Frames per clip.")] = 32,
    test_videos: Annotated[int | None, typer.Option(help="Test clips (default: a tenth).")] = None,
    workers: Annotated[int | None, typer.Option(help="Rendering processes (default: one per core).")] = None,
    kind: Annotated[
        str, typer.Option(help="objects: moving textured shapes; faces: talking faces with ground truth.")
    ] = "objects",
    people: Annotated[int, typer.Option(help="Faces: training people.")] = 100,
    clips_per_person: Annotated[int, typer.Option(help="Faces: clips of each person.")] = 4,
    test_people: Annotated[
        int | None, typer.Option(help="Faces: held-out people (default: a tenth, at least 2).")
    ] = None,
    measure_detection: Annotated[
        int, typer.Option(help="Faces: test frames to run the face detector on (0: skip).")
    ] = 32,
) -> None:
    """Write a procedural dataset (no download needed): moving, deforming textured objects, or
    synthetic talking faces with their parameters, landmarks and cross-identity ground truth."""
    processes = workers if workers is not None else os.cpu_count() or 1
    if kind == "faces":
        from animatica.training.faces import write_faces_dataset

        path = write_faces_dataset(
            out, people, clips_per_person, seed, size=size, frames=frames, test_people=test_people,
            workers=processes, measure_detection=measure_detection,
        )  # fmt: skip
    elif kind == "objects":
        from animatica.training.synth import synthesize

        path = synthesize(
            out, videos, seed, size=size, frames=frames, test_videos=test_videos, workers=processes
        )
    else:
        raise AnimaticaError(f"Unknown --kind {kind!r}: use 'objects' or 'faces'.")
    typer.echo(f"wrote {path}")


@app.command()
@user_errors
def train(
    data: Annotated[Path, typer.Option(help="Dataset folder (with train/ and test/) or its train/ folder.")],
    config: Annotated[str | None, typer.Option(help="Config: YAML path or built-in name.")] = None,
    checkpoint: Annotated[str | None, typer.Option(help="Checkpoint to resume from.")] = None,
    out_dir: Annotated[Path, typer.Option(help="Where checkpoints, logs and grids go.")] = Path("runs/train"),
    vgg_weights: Annotated[Path | None, typer.Option(help="Local VGG19 ImageNet weights (.pth).")] = None,
    steps: Annotated[int | None, typer.Option(help="Total steps to train to.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Total epochs to train to.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Override the config's batch size.")] = None,
    device: DeviceOption = "auto",
    precision: Annotated[
        str, typer.Option(help="auto (bf16 with bf16 units; a resume keeps its own), fp32, bf16.")
    ] = "auto",
    seed: Annotated[int, typer.Option()] = 0,
    max_minutes: Annotated[
        float | None, typer.Option(help="Stop (with a resumable checkpoint) after this much wall time.")
    ] = None,
) -> None:
    """Train FOMM (or a VAE+GAN: --config vaegan-64, vaegan-demo or a YAML with model: vaegan) on a
    folder of videos, or resume; FOMM checkpoints are in the public format."""
    from animatica.vaegan.checkpoint import is_vaegan_checkpoint
    from animatica.vaegan.config import is_vaegan_config

    settings = _settings(torch_threads=True)
    max_seconds = None if max_minutes is None else max_minutes * 60
    resuming_vaegan = checkpoint is not None and is_vaegan_checkpoint(checkpoint, settings.checkpoints_dir)
    if is_vaegan_config(config) if config is not None else resuming_vaegan:
        from animatica.vaegan.training import train as train_vaegan

        if epochs is not None:
            raise AnimaticaError("a VAE+GAN trains to a number of --steps, not --epochs")
        final = train_vaegan(
            config, data, checkpoint=checkpoint, out_dir=out_dir, steps=steps, device=device, seed=seed,
            batch_size=batch_size, progress_bar=sys.stderr.isatty(), precision=precision,
            checkpoints_dir=settings.checkpoints_dir, vgg_weights=vgg_weights, max_seconds=max_seconds,
        )  # fmt: skip
        typer.echo(f"wrote {final}")
        return
    from animatica.training.trainer import train as run_training

    final = run_training(
        config, data, checkpoint=checkpoint, out_dir=out_dir, vgg_weights=vgg_weights, steps=steps,
        epochs=epochs, device=device, seed=seed, batch_size=batch_size, progress_bar=sys.stderr.isatty(),
        precision=precision, checkpoints_dir=settings.checkpoints_dir, max_seconds=max_seconds,
    )  # fmt: skip
    typer.echo(f"wrote {final}")


@app.command()
@user_errors
def evaluate(
    data: Annotated[Path, typer.Option(help="Test clips (a dataset folder or its test/ folder).")],
    checkpoint: Annotated[
        str | None, typer.Option(help="Checkpoint path or shipped name (engines without weights need none).")
    ] = None,
    config: Annotated[str | None, typer.Option(help="Config, when the checkpoint holds none.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json-out", help="Write the JSON report here.")] = None,
    videos_out: Annotated[Path | None, typer.Option(help="Write a side-by-side video per clip here.")] = None,
    faces: Annotated[bool, typer.Option("--faces", help="Face metrics (landmarks, identity).")] = False,
    max_videos: Annotated[int | None, typer.Option(help="Evaluate at most this many clips.")] = None,
    cross_identity: Annotated[
        bool,
        typer.Option(
            "--cross-identity",
            help="Animate each test person's photo with another person's clip and compare with the "
            "rendered truth (a faces dataset from `data synth --kind faces`), for any engine.",
        ),
    ] = False,
    engine: Annotated[
        str, typer.Option(help="With --cross-identity: the engine to evaluate (fomm, landmarks, ...).")
    ] = "fomm",
    max_pairs: Annotated[
        int | None, typer.Option(help="With --cross-identity: evaluate the first N pairs only.")
    ] = None,
    device: DeviceOption = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Reconstruction metrics (L1, AKD, MKR, AED) of a model beside the no-motion baseline; with
    --cross-identity, cross-identity metrics (L1, landmarks, identity, expression) of any engine beside
    the copy-source and copy-driving baselines."""
    if cross_identity:
        if faces or max_videos is not None:
            raise AnimaticaError(
                "--faces and --max-videos are for reconstruction; --cross-identity always measures "
                "faces, and --max-pairs limits the pairs"
            )
        _evaluate_cross_identity(data, engine, checkpoint, config, json_out, videos_out, max_pairs, device,
                                 as_json)  # fmt: skip
        return
    if engine != "fomm" or max_pairs is not None:
        raise AnimaticaError(
            "reconstruction evaluation runs FOMM checkpoints; --engine and --max-pairs are for "
            "--cross-identity"
        )
    if checkpoint is None:
        raise AnimaticaError("--checkpoint is needed: a FOMM checkpoint path or shipped name (e.g. demo)")
    from animatica.training.evaluate import evaluate as run_evaluation

    settings = _settings(torch_threads=True)
    report = run_evaluation(
        checkpoint, data, json_out=json_out, videos_out=videos_out, config=config, device=device,
        faces=faces, max_videos=max_videos, checkpoints_dir=settings.checkpoints_dir,
    )  # fmt: skip
    if as_json:
        typer.echo(json.dumps(report))
        return
    for key, value in report["summary"].items():
        if key != "warnings":
            typer.echo(f"{key}: {json.dumps(value)}")
    for warning in report["summary"]["warnings"]:
        typer.echo(f"warning: {warning}", err=True)


# The figures `evaluate --cross-identity` prints, as (label, key for the engine).
_CROSS_FIGURES = (
    ("L1", "l1"),
    ("landmark distance (% IOD)", "landmark_distance"),
    ("no face", "no_face_rate"),
    ("identity distance", "identity_distance"),
    ("expression correlation", "expression_correlation"),
    ("  from landmarks", "landmark_expression_correlation"),
)


def _evaluate_cross_identity(
    data: Path,
    engine: str,
    checkpoint: str | None,
    config: str | None,
    json_out: Path | None,
    videos_out: Path | None,
    max_pairs: int | None,
    device: str,
    as_json: bool,
) -> None:
    from animatica.engines import choose_engine
    from animatica.pipeline import AnimationRequest, load_request_engine
    from animatica.training.cross_identity import evaluate_cross_identity, read_cross_dataset

    name = choose_engine(engine, checkpoint, kind="animation")
    read_cross_dataset(data)  # a folder without pairs is said before an engine loads
    settings = _settings(torch_threads=True)
    request = AnimationRequest(
        source=Path(""), driving=Path(""), output="", engine=name, checkpoint=checkpoint,
        config=config, device=device, checkpoints_dir=settings.checkpoints_dir,
    )  # fmt: skip
    _, loaded = load_request_engine(request)
    progress = (
        (lambda done, total: typer.echo(f"pair {done}/{total}", err=True)) if sys.stderr.isatty() else None
    )
    report = evaluate_cross_identity(
        loaded, data, checkpoint=checkpoint, json_out=json_out, videos_out=videos_out, max_pairs=max_pairs,
        on_progress=progress,
    )  # fmt: skip
    if as_json:
        typer.echo(json.dumps(report))
        return
    typer.echo(f"{report['engine']} on {report['pairs']} pairs, {report['frames']} frames ({report['data']})")
    typer.echo(f"{'':28}{'engine':>10}{'copy source':>13}{'copy driving':>14}")
    for label, key in _CROSS_FIGURES:
        values = [report[p + key] for p in ("", "baseline_source_", "baseline_driving_")]
        cells = [f"{v:.3f}" if v is not None else "-" for v in values]
        typer.echo(f"{label:28}{cells[0]:>10}{cells[1]:>13}{cells[2]:>14}")
    typer.echo(f"l1_ratio (vs the better baseline): {report['l1_ratio']:.3f}")
    for failed in report["failed_pairs"]:
        typer.echo(f"warning: pair {failed['pair']} left out: {failed['error']}", err=True)


@app.command()
@user_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Web processes answering requests (about one per core). More than one needs "
            "ANIMATICA_REDIS_URL while rate limits are on, so that they share the counts.",
        ),
    ] = 1,
) -> None:
    """Run the web service (API, docs at /docs): web processes plus one job runner process.

    The jobs run in a process of their own, whatever --workers is.
    With several web processes, rate limits are counted in Redis
    (ANIMATICA_REDIS_URL), metrics add up all processes, and the caps
    on open synchronous requests (ANIMATICA_SYNC_REQUESTS_*) and on
    password hashes at once (ANIMATICA_PASSWORD_HASH_*) hold per web
    process: the server as a whole allows --workers times them.
    SIGTERM stops the web processes (open requests get
    ANIMATICA_SHUTDOWN_GRACE_SECONDS), then the runner (running jobs get
    as long again, then go back to the queue).
    """
    from animatica.service.app import serve as run_service
    from animatica.service.serving import refuse_unshared_limits
    from animatica.service.startup import check_settings

    settings = _settings()
    check_settings(settings)  # an unsafe setting is the only line printed
    refuse_unshared_limits(settings, workers)
    url = f"http://{host}:{port}"
    processes = "1 web process" if workers == 1 else f"{workers} web processes"
    typer.echo(f"Animatica is serving on {url} with {processes} (API docs: {url}/docs)", err=True)
    run_service(host=host, port=port, settings=settings, workers=workers)


@app.command()
@user_errors
def worker(
    concurrency: Annotated[int, typer.Option(help="Worker processes, one segment each.")] = 1,
    queues: Annotated[str | None, typer.Option(help="Comma-separated queue names.")] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    hostname: Annotated[str | None, typer.Option(help="Celery node name.")] = None,
) -> None:
    """Run a Celery worker for the scale-out mode (needs ANIMATICA_BROKER_URL)."""
    from animatica.jobs.distributed.worker import run_worker
    from animatica.settings import get_settings

    if not get_settings().broker_url:
        raise AnimaticaError(
            "no broker configured: set ANIMATICA_BROKER_URL (e.g. amqp://guest:guest@127.0.0.1:5672// "
            "or redis://127.0.0.1:6379/0) and a shared ANIMATICA_DATABASE_URL"
        )
    run_worker(queues=queues.split(",") if queues else None, concurrency=concurrency, loglevel=loglevel,
               hostname=hostname)  # fmt: skip


@users_app.command("grant")
@user_errors
def users_grant(
    username: Annotated[str, typer.Argument()],
    credits: Annotated[int, typer.Argument(help="Credits to add (negative takes back, never below 0).")],
) -> None:
    """Give a user credits (a ledger row; the balance is derived from the ledger)."""
    from animatica.service.admin import grant_credits

    balance = grant_credits(username, credits)
    typer.echo(f"{username}: {balance} credits")


@users_app.command("list")
@user_errors
def users_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the accounts with their plan, credits and state."""
    from dataclasses import asdict

    from animatica.service.admin import list_users

    users = list_users()
    if as_json:
        typer.echo(json.dumps([asdict(u) for u in users]))
        return
    for u in users:
        state = "disabled" if u.disabled else "active"
        typer.echo(f"{u.id:>5}  {u.username:<24} {u.plan_id:<10} {u.credits:>6} credits  {state}")


@users_app.command("disable")
@user_errors
def users_disable(
    username: Annotated[str, typer.Argument()],
    enable: Annotated[bool, typer.Option("--enable", help="Enable the account again instead.")] = False,
) -> None:
    """Disable an account (and sign it out everywhere), or enable it again."""
    from animatica.service.admin import disable_user

    disable_user(username, disabled=not enable)
    typer.echo(f"{username}: {'enabled' if enable else 'disabled'}")


# Picture creation lives in its own module (it needs the cli helpers above, hence the late import).
from animatica.cli_images import image_app, models_app  # noqa: E402

app.add_typer(image_app, name="image")
app.add_typer(models_app, name="models")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
