import pytest
import torch

from animatica.errors import AnimaticaError
from animatica.vaegan.morph import path, slerp


def test_slerp_follows_the_sphere_and_lerp_cuts_inside():
    a, b = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 3.0])
    assert torch.allclose(slerp(a, b, 0.5).norm(), torch.tensor(3.0))
    assert torch.allclose(slerp(a, b, 0.0), a) and torch.allclose(slerp(a, b, 1.0), b)
    middle = path(a, b, 3, "linear")[1]
    assert torch.allclose(middle, torch.tensor([1.5, 1.5]))
    assert torch.allclose(path(a, b, 3)[1], slerp(a, b, 0.5))


def test_parallel_latents_fall_back_to_a_straight_line():
    a = torch.tensor([1.0, 2.0])
    assert torch.allclose(slerp(a, 2 * a, 0.5), 1.5 * a)


def test_bad_arguments():
    a = torch.zeros(2)
    with pytest.raises(AnimaticaError, match="unknown interpolation 'cubic'"):
        path(a, a, 3, "cubic")
    with pytest.raises(AnimaticaError, match="at least 2"):
        path(a, a, 1)
