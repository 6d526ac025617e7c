"""Piecewise-affine warp of an image region, driven by moving control points.

The source control points are triangulated once (Delaunay); for every pixel of a working grid
the enclosing triangle and barycentric weights are found once too. A frame then only needs the
control points' displacements: the dense displacement field is a gather-and-weight over those
precomputed maps, which is the *forward* map (source pixel → where it goes). Rendering needs
the inverse (output pixel → where it comes from); for a warp without fold-overs the
fixed-point iteration ``x ← p − D(x)`` converges to it in a few steps, each step one bilinear
lookup (``grid_sample``) of the field. The resulting sampling grid is upsampled to the region's
full resolution and the image is sampled once, so a large photo costs one full-size resample
plus work on a grid of at most ``work_side`` pixels a side.
"""

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse import csr_matrix
from scipy.spatial import Delaunay


class MeshWarp:
    def __init__(
        self, points: np.ndarray, size: tuple[int, int], *, work_side: int = 384, iterations: int = 4
    ) -> None:
        """``points`` ``(P, 2)`` are the source control points in region pixels (x, y), distinct;
        ``size`` is the region's (height, width). Pixels outside the points' hull do not move.
        """
        self.points = np.asarray(points, dtype=np.float64)
        self.size = size
        self.iterations = iterations
        h, w = size
        f = min(1.0, work_side / max(h, w))
        self.work = (max(2, round(h * f)), max(2, round(w * f)))
        gh, gw = self.work
        self.triangles = Delaunay(self.points)
        # Centres of working-grid pixels, in region pixel coordinates.
        ys = (np.arange(gh) + 0.5) * (h / gh) - 0.5
        xs = (np.arange(gw) + 0.5) * (w / gw) - 0.5
        grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
        simplex = self.triangles.find_simplex(grid)
        inside = simplex >= 0
        trans = self.triangles.transform[simplex[inside]]
        partial = np.einsum("nij,nj->ni", trans[:, :2], grid[inside] - trans[:, 2])
        bary = np.zeros((len(grid), 3), dtype=np.float32)
        bary[inside] = np.c_[partial, 1 - partial.sum(axis=1)]
        verts = np.zeros((len(grid), 3), dtype=np.int64)
        verts[inside] = self.triangles.simplices[simplex[inside]]
        # The field is linear in the displacements: one sparse (pixels x points) matrix.
        rows = np.repeat(np.arange(len(grid)), 3)
        self._weights = csr_matrix(
            (bary.ravel(), (rows, verts.ravel())), shape=(len(grid), len(self.points)), dtype=np.float32
        )
        # Output pixel positions on the working grid, in grid_sample's normalised units
        # (align_corners=False: -1 and 1 are the outer edges of the region).
        nx = (xs + 0.5) / w * 2 - 1
        ny = (ys + 0.5) / h * 2 - 1
        base = np.stack(np.meshgrid(nx, ny), axis=-1).astype(np.float32)
        self._base = torch.from_numpy(base).unsqueeze(0)  # (1, gh, gw, 2)
        self._to_norm = torch.tensor([2.0 / w, 2.0 / h], dtype=torch.float32)

    def sampling_grid(self, targets: np.ndarray) -> torch.Tensor:
        """``(1, h, w, 2)`` grid for ``grid_sample``: where each output pixel reads the source."""
        disp = (np.asarray(targets) - self.points).astype(np.float32)
        field = torch.from_numpy(np.asarray(self._weights @ disp, dtype=np.float32)) * self._to_norm
        gh, gw = self.work
        field_img = field.reshape(1, gh, gw, 2).permute(0, 3, 1, 2).contiguous()
        grid = self._base - field.reshape(1, gh, gw, 2)
        for _ in range(self.iterations - 1):
            moved = F.grid_sample(
                field_img, grid, mode="bilinear", padding_mode="border", align_corners=False
            )
            grid = self._base - moved.permute(0, 2, 3, 1)
        h, w = self.size
        if (gh, gw) != (h, w):
            grid = F.interpolate(grid.permute(0, 3, 1, 2), size=(h, w), mode="bilinear", align_corners=False)
            grid = grid.permute(0, 2, 3, 1)
        return grid

    def warp(self, image: torch.Tensor, targets: np.ndarray) -> torch.Tensor:
        """Warp ``image`` ``(1, C, h, w)`` float so its control points land on ``targets``."""
        grid = self.sampling_grid(targets)
        return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
