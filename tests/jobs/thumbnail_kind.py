"""A second kind of job, declared and nothing more: one stored picture in, a small PNG out.

Processes that run jobs import this module when ``job_kinds`` names it; that is all it takes.
"""

from typing import Any

from PIL import Image

from animatica.jobs.kinds import JobKind, Result, register

SIDE = 32


def run(fields: dict[str, Any], on_progress: Any, should_cancel: Any) -> Result:
    with Image.open(fields["inputs"]["source"]) as picture:
        small = picture.convert("RGB")
        small.thumbnail((SIDE, SIDE))
    small.save(fields["output"], format="PNG")
    return Result(frames=1)


THUMBNAIL = register(JobKind(name="thumbnail", inputs=("source",), result="result.png", run=run))
