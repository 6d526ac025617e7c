"""Warping module: public key layout, the reference's sampling quirks, and its numbers on named weights."""

import torch
from tests.liveportrait.named_weights import load_shapes

from animatica.liveportrait.dense_motion import DenseMotionNetwork, identity_grid
from animatica.liveportrait.warping import WarpingNetwork


def _tiny_warping(num_kp: int = 3) -> WarpingNetwork:
    torch.manual_seed(0)
    return WarpingNetwork(
        num_kp=num_kp,
        feature_channel=4,
        reshape_depth=4,
        out_channels=8,
        block_expansion=4,
        num_blocks=2,
        max_features=16,
        compress=2,
    ).eval()


def test_state_dict_is_the_public_layout() -> None:
    public = load_shapes()["warping_module"]
    network = WarpingNetwork()
    ours = {key: list(value.shape) for key, value in network.state_dict().items()}
    assert list(ours.items()) == list(public.items())  # same keys, shapes and order

    state = {
        key: torch.zeros(shape, dtype=torch.int64)
        if key.endswith("num_batches_tracked")
        else torch.full(shape, float(i))
        for i, (key, shape) in enumerate(public.items())
    }
    network.load_state_dict(state, strict=True)
    for key, value in network.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_identity_grid_ends_at_plus_minus_one_in_xyz_order() -> None:
    grid = identity_grid(3, 5, 7)
    assert grid.shape == (3, 5, 7, 3)
    assert torch.equal(grid[0, 0, 0], torch.tensor([-1.0, -1.0, -1.0]))
    assert torch.equal(grid[-1, -1, -1], torch.tensor([1.0, 1.0, 1.0]))
    torch.testing.assert_close(grid[0, 0, :, 0], torch.linspace(-1, 1, 7))  # x runs along the width
    torch.testing.assert_close(grid[0, :, 0, 1], torch.linspace(-1, 1, 5))  # y along the height
    torch.testing.assert_close(grid[:, 0, 0, 2], torch.linspace(-1, 1, 3))  # z along the depth


def test_identity_motion_samples_off_the_voxel_centres_with_zero_padding() -> None:
    """End points ±1 sampled with align_corners=False: half a voxel of zero padding blends in at
    every border, and inside the volume the samples fall between voxel centres."""
    network = DenseMotionNetwork(
        block_expansion=4, num_blocks=2, max_features=16, num_kp=1, feature_channel=2
    )
    d, h, w = 4, 6, 8
    motions = identity_grid(d, h, w)[None, None]  # (1, 1, d, h, w, 3)

    ones = network.deformed_features(torch.ones(1, 1, d, h, w), motions)[0, 0, 0]
    edge = [torch.tensor([0.5] + [1.0] * (n - 2) + [0.5]) for n in (d, h, w)]
    torch.testing.assert_close(ones, edge[0][:, None, None] * edge[1][None, :, None] * edge[2][None, None, :])

    ramp = torch.arange(w, dtype=torch.float32).expand(1, 1, d, h, w)  # value = voxel index along x
    sampled = network.deformed_features(ramp, motions)[0, 0, 0, 1, 1]
    i = torch.arange(1, w - 1, dtype=torch.float32)
    torch.testing.assert_close(sampled[1:-1], i * w / (w - 1) - 0.5)


def test_unmoved_keypoints_give_the_identity_deformation() -> None:
    warping = _tiny_warping()
    feature = torch.randn(1, 4, 4, 8, 8)
    kp = torch.rand(2, 3, 3) * 1.6 - 0.8
    with torch.no_grad():
        out = warping(feature, kp, kp)  # one source volume shared by a batch of two
    assert out["out"].shape == (2, 8, 8, 8)
    assert out["occlusion_map"].shape == (2, 1, 8, 8)
    assert out["deformation"].shape == (2, 4, 8, 8, 3)
    # Every candidate motion is the identity, so any softmax blend of them is too.
    torch.testing.assert_close(out["deformation"], identity_grid(4, 8, 8).expand(2, 4, 8, 8, 3))


def test_hourglass_input_is_keypoint_major_heat_map_then_features() -> None:
    warping = _tiny_warping(num_kp=2)
    dm = warping.dense_motion_network
    captured = []
    dm.hourglass.register_forward_pre_hook(lambda _module, args: captured.append(args[0]))
    feature = torch.randn(1, 4, 4, 8, 8)
    kp_source = torch.tensor([[[0.3, -0.2, 0.1], [-0.4, 0.5, -0.3]]])
    kp_driving = kp_source + torch.tensor([[[0.1, 0.05, 0.0], [-0.1, 0.0, 0.2]]])
    with torch.no_grad():
        warping(feature, kp_driving, kp_source)
        grid = identity_grid(4, 8, 8)
        motions = dm.sparse_motions(grid, kp_driving, kp_source)
        deformed = dm.deformed_features(dm.compressed(feature), motions)  # (1, 3, 2, d, h, w)
        heat = dm.heatmap_differences(grid, kp_driving, kp_source)  # (1, 3, 1, d, h, w)
    x = captured[0]
    assert x.shape == (1, 3 * 3, 4, 8, 8)
    assert torch.equal(x[:, 0], torch.zeros(1, 4, 8, 8))  # the background has no heat map
    for k in range(3):
        torch.testing.assert_close(x[:, 3 * k], heat[:, k, 0])
        torch.testing.assert_close(x[:, 3 * k + 1 : 3 * k + 3], deformed[:, k])
    assert float(heat[:, 1:].abs().max()) > 0.1  # the keypoints moved: real heat-map differences
    # Sparse motion k maps a voxel at the driving keypoint to the source keypoint.
    shift = (kp_source - kp_driving)[0, :, None, None, None, :]
    torch.testing.assert_close(motions[0, 1:] - grid, shift.expand(2, 4, 8, 8, 3))
    torch.testing.assert_close(motions[0, 0], grid)
