"""The whole per-frame path on name-derived weights, from pixels to pixels: F and M on the images,
the default relative motion with stitching, W and G, compared with the reference's frame t1."""

import dataclasses

import numpy as np
import pytest
import torch

from animatica.liveportrait.motion import (
    KeypointInfo,
    MotionOptions,
    Networks,
    drive,
    keypoint_info,
    prepare_motion,
)


def row(info: KeypointInfo, i: int) -> KeypointInfo:
    return KeypointInfo(**{f.name: getattr(info, f.name)[i : i + 1] for f in dataclasses.fields(info)})


@pytest.mark.slow
def test_frame_t1_from_pixels_matches_reference(named_lp_networks, lp_parity: dict[str, np.ndarray]) -> None:
    nets = named_lp_networks
    source = torch.from_numpy(lp_parity["inputs/source"])
    driving = torch.from_numpy(lp_parity["inputs/driving"])
    options = MotionOptions()  # relative, expression-friendly, stitching, multiplier 1
    with torch.no_grad():
        feature = nets.appearance(source)
        info = keypoint_info(nets.motion(torch.cat([source, driving[:2]])))  # source, t0, t1
        prepared = prepare_motion(row(info, 0), row(info, 1), options)
        x_d = drive(prepared, row(info, 2), options, Networks(stitching=nets.stitching))
        warped = nets.warping(feature, x_d, prepared.x_s)
        image = nets.decoder(warped["out"])

    np.testing.assert_allclose(x_d.numpy(), lp_parity["t1/x_d_i_new"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(
        warped["occlusion_map"].numpy(), lp_parity["t1/occlusion_map"], rtol=0, atol=1e-4
    )
    deformation = warped["deformation"][:, ::2, ::4, ::4, :].numpy()
    np.testing.assert_allclose(deformation, lp_parity["t1/deformation_sub"], rtol=0, atol=1e-4)

    difference = np.abs(image.numpy() - lp_parity["t1/out"])
    assert difference.max() <= 1e-3 and difference.mean() <= 1e-4, (difference.max(), difference.mean())
    frame_u8 = (image.clamp(0, 1) * 255).to(torch.uint8).numpy()  # truncated, as the reference writes
    levels = np.abs(frame_u8.astype(np.int16) - lp_parity["t1/out_u8"])
    assert levels.max() <= 1 and levels.mean() < 0.05, (levels.max(), levels.mean())
