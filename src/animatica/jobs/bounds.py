"""How long and how large one job may grow before it is stopped.

One worker animates one job at a time, so a job that hangs (a decoder stuck on a hostile file, a
deadlock in native code) or grows without end would hold the worker, or the machine, forever.
Three bounds stop it; the job then fails with a message that says which, and its credit returns:

* a wall-clock limit on the whole animation: ``job_timeout_seconds``, or when that is 0, one that
  grows with the driving video (``BASE_SECONDS`` plus ``SECONDS_PER_FRAME`` per driving frame);
* a stall limit: ``job_stall_seconds`` without a progress report (the pipeline reports every batch);
* an address-space cap (``RLIMIT_AS``) on the process that animates: ``job_memory_mb``.
"""

import resource
from dataclasses import dataclass, replace

from animatica.settings import Settings

# Fixed costs of a job whatever its length: loading an engine and its weights, probing, preparing
# the source, finishing the encode.
BASE_SECONDS = 300.0
# The FOMM vox-256 default path takes 0.25 s a frame on two Xeon cores; a machine with a third of
# that speed, its cores shared by two jobs, needs 1.5 s. The rest is room for the passes that report
# no progress (face cropping, best-frame search). The landmarks engine is about ten times faster.
SECONDS_PER_FRAME = 2.0
# Engines far slower per frame than that: LivePortrait renders a 512x512 frame in about 8 s on two
# EPYC cores in fp32 (about 1.2 TFLOP), so a job of it gets 30 s a frame.
# A picture's job counts denoising steps: one Stable Diffusion 1.5 step at 512x512 with guidance
# (1.35 TFLOP) took 78 s on two busy EPYC cores in fp32, and the VAE decode as long again; the rest
# is room for an upscale to a cover's size, whose model steps are counted as steps too.
ENGINE_SECONDS_PER_FRAME = {"liveportrait": 30.0, "diffusion": 120.0}


@dataclass(frozen=True)
class JobBounds:
    timeout_seconds: float = 0.0  # 0: derived from the driving video's frames
    stall_seconds: float = 0.0  # 0: a silent job is never stopped for it
    memory_mb: int = 0  # 0: no cap
    seconds_per_frame: float = SECONDS_PER_FRAME  # of the derived wall-clock limit

    @classmethod
    def from_settings(cls, settings: Settings) -> "JobBounds":
        return cls(settings.job_timeout_seconds, settings.job_stall_seconds, settings.job_memory_mb)

    def for_engine(self, engine: str | None) -> "JobBounds":
        """These bounds for a job of ``engine``: its derived time limit allows for its frame cost."""
        return replace(self, seconds_per_frame=ENGINE_SECONDS_PER_FRAME.get(engine or "", SECONDS_PER_FRAME))

    def time_limit(self, frames: int | None) -> float | None:
        """Seconds an animation of ``frames`` driving frames may take; None when nothing bounds it."""
        if self.timeout_seconds > 0:
            return self.timeout_seconds
        if frames is None:
            return None
        return BASE_SECONDS + self.seconds_per_frame * max(0, frames)


def cap_memory(megabytes: int) -> None:
    """Cap this process's address space: an allocation past it fails here, as a MemoryError, instead
    of pushing the machine into swap or waking the kernel's OOM killer, which may pick the server."""
    if megabytes <= 0:
        return
    limit = megabytes * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
