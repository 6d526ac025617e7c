"""The one list of engines and the one meaning of ``auto``, for the command line and the service."""

import pytest

from animatica.engines import AUTO, ENGINES, REQUESTABLE, choose_engine, load_engine
from animatica.errors import AnimaticaError


def test_every_engine_is_listed_once_with_its_loader() -> None:
    assert list(ENGINES) == ["landmarks", "fomm", "liveportrait", "vaegan", "faceswap", "faceswap-onnx"]
    assert REQUESTABLE == ("landmarks", "fomm", "liveportrait", "vaegan", AUTO)  # what an animation may name
    assert all(callable(loader) for loader in ENGINES.values())


def test_auto_is_fomm_exactly_when_weights_are_given() -> None:
    assert choose_engine("auto", "vox-cpk.pth.tar") == "fomm"
    assert choose_engine("auto", None) == "landmarks"
    assert choose_engine("auto", "") == "landmarks"
    assert choose_engine("landmarks", "vox-cpk.pth.tar") == "landmarks"  # a named engine is kept
    assert choose_engine("fomm", None) == "fomm"  # its loader says which weights it misses


def test_unknown_names_are_refused_and_loading_wants_a_concrete_engine() -> None:
    with pytest.raises(
        AnimaticaError, match="Unknown engine 'magic'; use one of landmarks, fomm, liveportrait, vaegan, auto"
    ):
        choose_engine("magic", None)
    with pytest.raises(ValueError, match="no engine named 'auto'"):
        load_engine("auto")
    with pytest.raises(AnimaticaError, match="needs --checkpoint"):
        load_engine("fomm")
