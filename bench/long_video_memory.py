"""Peak memory of an animation as the driving video gets longer (it must stay flat).

    python bench/long_video_memory.py --seconds 30 180 --height 720 [--config vox-256] [--json]

For each length, a 720p driving video with sound is generated, then one `animatica animate` runs
in a child process whose peak resident set size (ru_maxrss) is reported. The FOMM weights are
random (the memory does not depend on their values). Prints a table and one JSON line.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from animatica.bench import machine, random_checkpoint


def write_driving(path: Path, seconds: float, height: int, fps: int = 25) -> Path:
    """A moving gradient with a disc and a tone: cheap to encode, real H.264 + AAC."""
    width = (height * 16 // 9) // 2 * 2
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 80)], -1).astype(np.uint8)
    frames = int(seconds * fps)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "28"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("aac", rate=44100)
        audio.layout = "mono"
        r = height // 6
        for i in range(frames):
            img = base.copy()
            cx = int(width / 2 + width / 4 * np.sin(i / 20))
            cy = int(height / 2 + height / 6 * np.cos(i / 15))
            img[max(cy - r, 0) : cy + r, max(cx - r, 0) : cx + r] = 230
            for packet in video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        samples = int(seconds * 44100)
        for start in range(0, samples, 4096):
            n = min(4096, samples - start)
            t = (start + np.arange(n)) / 44100
            chunk = av.AudioFrame.from_ndarray(
                (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)[None], format="fltp", layout="mono"
            )
            chunk.sample_rate = 44100
            chunk.time_base = Fraction(1, 44100)
            chunk.pts = start
            for packet in audio.encode(chunk):
                out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)
    return path


CHILD = """
import resource, sys, time
from pathlib import Path
from animatica.pipeline import AnimationRequest, animate
src, drv, out, ckpt, batch = sys.argv[1:6]
t = time.perf_counter()
r = animate(AnimationRequest(source=Path(src), driving=Path(drv), output=Path(out), checkpoint=ckpt,
                             batch_size=int(batch)))
print(r.frames, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[30.0, 180.0])
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--config", default="vox-256")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        checkpoint = random_checkpoint(args.config, folder)
        source = folder / "source.png"
        from PIL import Image

        Image.fromarray(np.full((600, 500, 3), 128, np.uint8)).save(source)
        for seconds in args.seconds:
            driving = write_driving(folder / f"driving-{seconds:g}s.mp4", seconds, args.height)
            out = folder / f"out-{seconds:g}s.mp4"
            started = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(source), str(driving), str(out), str(checkpoint),
                 str(args.batch_size)],
                capture_output=True, text=True,
            )  # fmt: skip
            if proc.returncode != 0:
                sys.exit(f"the animation failed:\n{proc.stderr}")
            frames, seconds_taken, maxrss_kb = proc.stdout.split()[-3:]
            rows.append(
                {
                    "seconds": seconds,
                    "height": args.height,
                    "frames": int(frames),
                    "peak_rss_mb": round(int(maxrss_kb) / 1024, 1),
                    "wall_s": round(float(seconds_taken), 1),
                    "ms_per_frame": round(float(seconds_taken) * 1000 / int(frames), 1),
                }
            )
            out.unlink(missing_ok=True)
            driving.unlink()
            print(rows[-1], f"(total {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    print(f"machine: {machine()}; config {args.config}; peak RSS per driving length:")
    for row in rows:
        mb, frames = row["peak_rss_mb"], row["frames"]
        print(f"  {row['seconds']:>6g} s at {row['height']}p: {mb:8.1f} MB, {frames} frames")
    growth = rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"] if len(rows) > 1 else 1.0
    summary = {
        "bench": "long_video_memory",
        "config": args.config,
        "rows": rows,
        "rss_growth_ratio": round(growth, 3),
        "machine": machine(),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
