"""Synthetic talking faces with known identity, expression and pose, and their dataset writer.

Real face video cannot be downloaded here, and real video has no ground truth for the question
an animation engine must answer: what would person A look like making person B's expression?
A parametric renderer knows the answer, so it can write that truth beside the clips.
"""

from animatica.training.faces.dataset import render_clip, write_faces_dataset
from animatica.training.faces.params import (
    IDENTITY,
    MOTION,
    neutral,
    sample_identity,
    sample_motion,
    sample_scene,
)
from animatica.training.faces.render import render_frame

__all__ = [
    "IDENTITY",
    "MOTION",
    "neutral",
    "render_clip",
    "render_frame",
    "sample_identity",
    "sample_motion",
    "sample_scene",
    "write_faces_dataset",
]
