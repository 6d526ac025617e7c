"""Relative landmark motion: carry a driving face's movement over to a different source face.

Absolute driving landmarks cannot be pasted onto the source: the faces differ in shape, size,
position and roll. What transfers is the *change* since the initial driving frame, split into
 - head motion: the similarity between the initial and current driving frames, fitted on points
   that move with the skull (``geometry.RIGID``), re-expressed around the source face (the
   source turns by the same angle about its own centre, shifts by the same fraction of its own
   size);
 - expression: what remains once head motion is undone, rotated and scaled from the driving
   face's frame into the source face's frame and added to the source landmarks.
Eyes are retargeted by ratio (a driving eye at 30 % of its initial opening makes the source eye
30 % open, whatever the two people's eye shapes), and the lips are kept from crossing.
"""

from dataclasses import dataclass

import numpy as np

from animatica.face import geometry as g


@dataclass(frozen=True)
class MotionLimits:
    """Bounds on head motion, beyond which a 2-D warp of one photo stops looking like a head."""

    max_angle: float = np.deg2rad(30.0)
    min_scale: float = 0.8
    max_scale: float = 1.25
    max_shift: float = 0.4  # in source face sizes


@dataclass(frozen=True)
class Retargeter:
    source: np.ndarray  # (68, 2) source landmarks
    initial: np.ndarray  # (68, 2) landmarks of the initial driving frame
    scale: float = 1.0  # motion multiplier (0 = still, 1 = as driven)
    limits: MotionLimits = MotionLimits()

    @property
    def to_source(self) -> np.ndarray:
        """Similarity from the initial driving face's frame to the source face's frame."""
        return g.fit_similarity(self.initial[g.RIGID], self.source[g.RIGID])

    def __call__(self, driving: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Target source landmarks ``(68, 2)`` and the head-motion similarity in source pixels."""
        k = self.scale
        head_d = g.fit_similarity(self.initial[g.RIGID], driving[g.RIGID])
        aligned = g.apply(g.invert(head_d), driving)  # current face, head motion undone
        expression = aligned - self.initial
        to_src = self.to_source
        points = self.source + k * (expression @ to_src[:, :2].T)
        points = self._fix_eyes(points, aligned)
        points = self._fix_lips(points)
        head = self._source_head_motion(head_d, to_src)
        return g.apply(head, points), head

    def _source_head_motion(self, head_d: np.ndarray, to_src: np.ndarray) -> np.ndarray:
        conj = g.compose(to_src, g.compose(head_d, g.invert(to_src)))
        centre = self.source[g.RIGID].mean(axis=0)
        angle, scale, _ = g.decompose(conj)
        shift = g.apply(conj, centre[None])[0] - centre
        lim = self.limits
        angle = float(np.clip(angle * self.scale, -lim.max_angle, lim.max_angle))
        scale = float(np.clip(scale**self.scale, lim.min_scale, lim.max_scale))
        shift = shift * self.scale
        size = g.face_size(self.source)
        norm = np.linalg.norm(shift)
        if norm > lim.max_shift * size:
            shift = shift * (lim.max_shift * size / norm)
        rot = g.similarity(angle, scale, np.zeros(2))
        # x -> centre + sR (x - centre) + shift
        rot[:, 2] = centre + shift - rot[:, :2] @ centre
        return rot

    def _fix_eyes(self, points: np.ndarray, aligned: np.ndarray) -> np.ndarray:
        down_d = g.down_axis(self.initial)
        down_s = g.down_axis(self.source)
        out = points.copy()
        for upper, lower in g.EYE_PAIRS:
            gap0 = float((self.initial[lower] - self.initial[upper]) @ down_d)
            if gap0 <= 1e-3:
                continue
            ratio = float((aligned[lower] - aligned[upper]) @ down_d) / gap0
            ratio = float(np.clip(1 + self.scale * (ratio - 1), 0.0, 1.4))
            gap_s = max(float((self.source[lower] - self.source[upper]) @ down_s), 0.0)
            current = float((out[lower] - out[upper]) @ down_s)
            # Keep the lower lid where relative motion put it; the upper lid sets the opening.
            out[upper] = out[upper] + (current - ratio * gap_s) * down_s
        return out

    def _fix_lips(self, points: np.ndarray) -> np.ndarray:
        down = g.down_axis(self.source)
        out = points.copy()
        for upper, lower in g.MOUTH_PAIRS:
            gap = float((out[lower] - out[upper]) @ down)
            if gap < 0:
                mid = (out[lower] + out[upper]) / 2
                out[upper] = mid - 0.01 * down
                out[lower] = mid + 0.01 * down
        return out
