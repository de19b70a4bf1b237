"""Denoisers with a noise-level input and their training data: shapes, noise statistics,
determinism, the trained range, a short training that must denoise, and bad input."""

import warnings

import pytest
import torch

import tomolearn as tl
from tomolearn.data import DenoisingDataset, stack_noise_level
from tomolearn.learned import DnCNN, DRUNet
from tomolearn.train import ConfigError, trainer_from_config

torch.set_num_threads(1)


def test_denoising_pairs_are_deterministic_and_have_the_stated_noise():
    t = tl.task("ct")
    ds = DenoisingDataset("ellipses", "train", t, size=50, sigma_range=(0.05, 0.1))
    stacked, clean = ds[7]
    again, _ = ds[7]
    assert stacked.shape == (2, 128, 128) and clean.shape == (1, 128, 128)
    torch.testing.assert_close(stacked, again, rtol=0, atol=0)
    sigma = float(stacked[1, 0, 0])
    assert 0.05 <= sigma <= 0.1 and float(stacked[1].std()) == 0.0
    assert float((stacked[0] - clean[0]).std()) == pytest.approx(sigma, rel=0.03)
    assert not torch.equal(ds[8][0][0], stacked[0])
    patches = DenoisingDataset("ellipses", "train", t, size=50, patch=32)
    assert patches[3][0].shape == (2, 32, 32) and patches[3][1].shape == (1, 32, 32)


def test_complex_images_get_two_channels_and_per_component_noise():
    t = tl.task("mri").tiny()
    stacked, clean = DenoisingDataset("ellipses", "train", t, size=4, sigma_range=(0.1, 0.1))[0]
    assert stacked.shape == (3, 24, 24) and clean.dtype == torch.complex64
    residual = stacked[:2] - torch.view_as_real(clean[0]).permute(2, 0, 1)
    assert float(residual.std()) == pytest.approx(0.1, rel=0.15)
    x = torch.randn(2, 1, 5, 6, dtype=torch.complex64)
    s = stack_noise_level(x, torch.tensor([0.1, 0.2]))
    assert s.shape == (2, 3, 5, 6) and float(s[1, 2].max()) == pytest.approx(0.2)


@pytest.mark.parametrize("cls, params", [(DnCNN, {"channels": 8, "layers": 4}),
                                         (DRUNet, {"channels": (4, 8, 8), "blocks": 1})])
def test_denoisers_take_any_size_per_image_levels_and_complex_images(cls, params):
    real = cls(tl.task("ct").tiny().operator(), sigma_range=(0.0, 0.2), **params).eval()
    with torch.no_grad():
        for shape in ((17, 23), (8, 8)):
            assert real.denoise(torch.rand((2, 1) + shape), 0.1).shape == (2, 1) + shape
        a = real.denoise(torch.rand(2, 1, 16, 16), torch.tensor([0.05, 0.15]))
        assert a.shape == (2, 1, 16, 16)
    cplx = cls(tl.task("mri").tiny().operator(), **params).eval()
    z = torch.randn(1, 1, 12, 12, dtype=torch.complex64)
    assert cplx.denoise(z, 0.1).dtype == torch.complex64
    with pytest.raises(TypeError, match="complex"):
        real.denoise(z, 0.1)
    with pytest.raises(ValueError, match="finite and >= 0"):
        real.denoise(torch.rand(1, 1, 8, 8), -0.1)
    with pytest.raises(ValueError, match="stacked input"):
        real(torch.rand(1, 1, 8, 8))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        real.denoise(torch.rand(1, 1, 8, 8), 0.5)
        real.denoise(torch.rand(1, 1, 8, 8), 0.6)
    assert len([w for w in caught if "outside the trained range [0, 0.2]" in str(w.message)]) == 1
    with pytest.raises(ValueError, match="sigma_range"):
        cls(tl.task("ct").tiny().operator(), sigma_range=(0.2, 0.1), **params)


def _config(tmp_path, **data):
    return {"out_dir": str(tmp_path / "run"),
            "model": {"name": "drunet", "params": {"sigma_range": [0.05, 0.1],
                                                   "channels": [8, 16, 16], "blocks": 1}},
            "data": {"task": "ct", "family": "ellipses", "train_size": 2000,
                     "validation_size": 8, "patch": 32, **data},
            "train": {"steps": 120, "batch_size": 8, "lr": 3e-3, "loss": "l1", "val_every": 120,
                      "val_batch_size": 8, "log_every": 40, "checkpoint_every": 120,
                      "threads": 1, "tensorboard": False}}


def test_a_short_training_denoises_and_the_weights_load_back(tmp_path):
    trainer = trainer_from_config(_config(tmp_path), progress=False)
    trainer.fit()
    model = tl.load(tmp_path / "run" / "final.safetensors")
    assert isinstance(model, DRUNet) and model.sigma_range == (0.05, 0.1)
    ds = DenoisingDataset("ellipses", "test", tl.task("ct"), size=4, sigma_range=(0.08, 0.08))
    stacked = torch.stack([ds[i][0] for i in range(4)])
    clean = torch.stack([ds[i][1] for i in range(4)])
    with torch.no_grad():
        out = model(stacked)
    gain = tl.metrics.psnr(out, clean) - tl.metrics.psnr(stacked[:, :1], clean)
    assert float(gain.mean()) > 3.0


def test_patch_is_for_denoisers_only(tmp_path):
    config = _config(tmp_path)
    config["model"] = {"name": "lgd", "params": {"n_iter": 1, "channels": 4}}
    with pytest.raises(ConfigError, match="data.patch"):
        trainer_from_config(config, progress=False)
