import pytest
import torch

from animatica.errors import ConfigError
from animatica.vaegan.config import VaeganConfig, config_from_dict, config_to_dict, down_layers, load_config
from animatica.vaegan.decoder import Decoder
from animatica.vaegan.discriminator import Discriminator
from animatica.vaegan.encoder import Encoder
from tests.vaegan.conftest import tiny_config


@pytest.mark.parametrize("size", [64, 128])
def test_shapes_at_each_size(size):
    cfg = tiny_config(size)
    images = torch.rand(2, 3, size, size)
    mu, logvar = Encoder(cfg)(images)
    assert mu.shape == logvar.shape == (2, cfg.latent)
    assert Decoder(cfg)(mu).shape == (2, 3, size, size)
    logit, features = Discriminator(cfg)(images)
    assert logit.shape == (2,)
    assert features.shape[:2] == (2, cfg.disc_channels[-1])


def test_default_is_the_reproduced_architecture():
    cfg = load_config("vaegan-64")
    assert cfg == VaeganConfig()
    encoder, decoder, disc = Encoder(cfg), Decoder(cfg), Discriminator(cfg)

    def count(module, kind):
        return sum(isinstance(m, kind) for m in module.modules())

    assert (cfg.size, cfg.latent) == (64, 200)
    assert (count(encoder, torch.nn.Conv2d), count(encoder, torch.nn.Linear)) == (7, 3)
    assert (count(decoder, torch.nn.Conv2d), count(decoder, torch.nn.Linear)) == (7, 3)
    assert (count(disc, torch.nn.Conv2d), count(disc, torch.nn.Linear)) == (4, 3)


@pytest.mark.parametrize("size", [64, 128, 256])
def test_encoder_halves_down_to_four(size):
    downs = down_layers(size)
    assert len(downs) == 7
    assert size // 2 ** sum(downs) == 4


def test_config_round_trip_and_errors(tmp_path):
    cfg = tiny_config(128)
    assert config_from_dict(config_to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match="size must be one of 64, 128, 256"):
        VaeganConfig(size=96)
    with pytest.raises(ConfigError, match="channels must be 7"):
        VaeganConfig(channels=(8, 8))
    with pytest.raises(ConfigError, match="unknown keys latnt"):
        config_from_dict({"latnt": 3})
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("model: vaegan\nsize: 128\nloss: {kl: 0.5}\n")
    assert load_config(yaml_file).loss.kl == 0.5
