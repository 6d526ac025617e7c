"""Face metrics over paired frame sequences (generated vs real), as FOMM's evaluation reports them.

- AKD, average keypoint distance: mean pixel distance between the landmarks of the generated and
  the real frame, over frames where both show a face.
- MKR, missing keypoint rate: share of the frames with a face in the real video whose generated
  frame has none.
- AED, average euclidean distance: mean L2 distance between identity embeddings of the generated
  and real faces (the dlib ResNet's 128-D space, where about 0.6 separates people).
The embedding costs a fraction of a second per face on a CPU, so AED is optional.
"""

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from animatica.errors import AnimaticaError
from animatica.face.analyzer import FaceAnalyzer, get_analyzer


@dataclass(frozen=True)
class FaceMetrics:
    akd: float  # pixels; nan when no pair of frames both showed a face
    mkr: float  # 0..1; nan when no real frame showed a face
    aed: float | None  # None when not asked for
    frames: int
    matched: int  # frames where both showed a face


def face_metrics(
    generated: Iterable[np.ndarray],
    real: Iterable[np.ndarray],
    *,
    with_identity: bool = True,
    analyzer: FaceAnalyzer | None = None,
) -> FaceMetrics:
    analyzer = analyzer or get_analyzer()
    distances: list[float] = []
    identities: list[float] = []
    frames = real_faces = missed = 0
    sentinel = object()
    gen_iter, real_iter = iter(generated), iter(real)
    while True:
        gen, ref = next(gen_iter, sentinel), next(real_iter, sentinel)
        if gen is sentinel and ref is sentinel:
            break
        if gen is sentinel or ref is sentinel:
            raise AnimaticaError(
                "The generated and real videos have different frame counts: compare paired frames."
            )
        assert isinstance(gen, np.ndarray) and isinstance(ref, np.ndarray)
        frames += 1
        ref_faces = analyzer.detect(ref)
        if not ref_faces:
            continue
        real_faces += 1
        gen_faces = analyzer.detect(gen)
        if not gen_faces:
            missed += 1
            continue
        ref_points = analyzer.landmarks(ref, ref_faces[0])
        gen_points = analyzer.landmarks(gen, gen_faces[0])
        distances.append(float(np.linalg.norm(gen_points - ref_points, axis=1).mean()))
        if with_identity:
            diff = analyzer.embedding(gen, gen_faces[0]) - analyzer.embedding(ref, ref_faces[0])
            identities.append(float(np.linalg.norm(diff)))
    return FaceMetrics(
        akd=float(np.mean(distances)) if distances else float("nan"),
        mkr=missed / real_faces if real_faces else float("nan"),
        aed=(float(np.mean(identities)) if identities else float("nan")) if with_identity else None,
        frames=frames,
        matched=len(distances),
    )
