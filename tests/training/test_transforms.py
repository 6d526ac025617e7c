"""Random affine + thin-plate-spline warps: analytic jacobian, image warping, reproducibility."""

import torch

from animatica.training.transforms import RandomWarp


def _warp(seed: int = 0) -> RandomWarp:
    return RandomWarp.sample(3, 0.1, 0.02, 4, generator=torch.Generator().manual_seed(seed))


def test_analytic_jacobian_matches_autograd() -> None:
    warp = _warp()
    points = torch.rand(3, 5, 2, dtype=torch.float64) * 2 - 1
    warp = RandomWarp(warp.affine.double(), warp.weights.double(), warp.controls.double())
    analytic = warp.jacobian(points)
    for b in range(3):
        for n in range(5):
            numeric = torch.autograd.functional.jacobian(
                lambda p, b=b: warp.apply(p.view(1, 1, 2).expand(3, 1, 2))[b, 0], points[b, n]
            )
            assert torch.allclose(analytic[b, n], numeric, atol=1e-8)


def test_identity_warp_keeps_images() -> None:
    warp = RandomWarp.sample(2, 0.0)
    images = torch.rand(2, 3, 16, 16)
    assert torch.allclose(warp.warp_images(images), images, atol=1e-5)


def test_warped_image_shows_the_original_at_the_mapped_point() -> None:
    # A pure shift by +0.5 in x: the pixel at z shows the original at z + 0.5.
    affine = torch.tensor([[[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]]])
    warp = RandomWarp(affine, None, None)
    image = torch.linspace(0, 1, 17).view(1, 1, 1, 17).expand(1, 1, 9, 17).contiguous()
    out = warp.warp_images(image)
    assert torch.allclose(out[0, 0, 4, 4], image[0, 0, 4, 8], atol=1e-5)
    points = torch.tensor([[[0.0, 0.0]]])
    assert torch.allclose(warp.apply(points), torch.tensor([[[0.5, 0.0]]]))


def test_same_generator_state_same_warps() -> None:
    a, b = _warp(4), _warp(4)
    assert torch.equal(a.affine, b.affine) and torch.equal(a.weights, b.weights)
    assert not torch.equal(a.affine, _warp(5).affine)
