"""SPADE decoder: public key layout, stored spectral norm folded once, and the reference's frame."""

import torch
import torch.nn.functional as F
from tests.liveportrait.named_weights import load_shapes

from animatica.liveportrait.spade import SPADE, SPADEDecoder, SpectralNormConv2d


def _spectral_state(out_c: int, in_c: int, k: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A stored triple whose vectors are one power-iteration round from random: sigma is well
    away from zero but clearly not the kernel's largest singular value."""
    g = torch.Generator().manual_seed(seed)
    bias = torch.randn(out_c, generator=g)
    kernel = torch.randn(out_c, in_c, k, k, generator=g)
    u = kernel.flatten(1) @ torch.randn(in_c * k * k, generator=g)
    u = u / u.norm()
    v = kernel.flatten(1).t() @ u
    return {"bias": bias, "weight_orig": kernel, "weight_u": u, "weight_v": v / v.norm()}


def test_state_dict_is_the_public_layout_and_round_trips() -> None:
    public = load_shapes()["spade_generator"]
    decoder = SPADEDecoder()
    ours = {key: list(value.shape) for key, value in decoder.state_dict().items()}
    assert list(ours.items()) == list(public.items())  # same keys, shapes and order

    state = {key: torch.full(shape, 1.0 + i / 1000) for i, (key, shape) in enumerate(public.items())}
    decoder.load_state_dict(state, strict=True)
    saved = decoder.state_dict()
    assert list(saved) == list(public)  # the folded kernels are not saved
    for key, value in saved.items():
        assert torch.equal(value, state[key]), key


def test_spectral_conv_uses_the_stored_vectors_without_iterating() -> None:
    state = _spectral_state(6, 4, 3)
    conv = SpectralNormConv2d(4, 6, kernel_size=3, padding=1)
    conv.load_state_dict(state, strict=True)
    w = state["weight_orig"]
    sigma = state["weight_u"] @ w.flatten(1) @ state["weight_v"]
    assert sigma < 0.98 * torch.linalg.matrix_norm(w.flatten(1), ord=2)  # the stored u, v matter
    x = torch.randn(2, 4, 5, 5)
    expected = F.conv2d(x, w / sigma, state["bias"], padding=1)
    for training in (False, True):  # the stored vectors are used as they are in both modes
        torch.testing.assert_close(conv.train(training)(x), expected)
    assert torch.equal(conv.weight_u, state["weight_u"]) and torch.equal(conv.weight_v, state["weight_v"])

    # PyTorch's own spectral norm in eval mode computes the same kernel from the same triple.
    reference = torch.nn.utils.spectral_norm(torch.nn.Conv2d(4, 6, 3, padding=1)).eval()
    reference.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(reference(x), expected)


def test_spectral_conv_refolds_after_loading_and_on_request() -> None:
    decoder = SPADEDecoder(input_channels=8, out_channels=4)
    conv = decoder.up_1.conv_s  # the bias-free 1x1 shortcut
    assert conv.bias is None
    state = {key: value for key, value in _spectral_state(4, 8, 1).items() if key != "bias"}
    conv.load_state_dict(state, strict=True)
    sigma = state["weight_u"] @ state["weight_orig"].flatten(1) @ state["weight_v"]
    torch.testing.assert_close(conv.weight, state["weight_orig"] / sigma)

    with torch.no_grad():
        conv.weight_orig[0].mul_(3.0)
    edited = conv.weight_orig.detach().clone()
    decoder.fold_spectral_norm()
    sigma = state["weight_u"] @ edited.flatten(1) @ state["weight_v"]
    torch.testing.assert_close(conv.weight, edited / sigma)


def test_fresh_spectral_conv_is_normalised() -> None:
    torch.manual_seed(0)
    conv = SpectralNormConv2d(16, 8, kernel_size=3)
    largest = torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2)
    assert 0.99 < float(largest) < 1.05  # power iteration at construction found the top singular value


def test_spade_norm_scales_and_shifts_by_the_resized_label_map() -> None:
    torch.manual_seed(0)
    norm = SPADE(norm_nc=3, label_nc=2, hidden=5)
    x = torch.randn(1, 3, 8, 8) * 2 + 1
    label = torch.randn(1, 2, 4, 4)
    with torch.no_grad():
        out = norm(x, label)
        big = label.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # nearest x2: repetition
        hidden = F.relu(norm.mlp_shared[0](big))
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
        expected = (x - mean) / torch.sqrt(var + 1e-5) * (1 + norm.mlp_gamma(hidden)) + norm.mlp_beta(hidden)
    torch.testing.assert_close(out, expected)


def test_small_decoder_output_shape_and_range() -> None:
    torch.manual_seed(0)
    decoder = SPADEDecoder(input_channels=8, out_channels=4).eval()
    with torch.no_grad():
        image = decoder(torch.randn(2, 8, 4, 4))
    assert image.shape == (2, 3, 32, 32)  # two x2 up-samplings, then the x2 pixel shuffle
    assert float(image.min()) > 0 and float(image.max()) < 1
