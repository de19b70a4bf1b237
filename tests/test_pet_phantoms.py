"""PET phantoms: NEMA NU 2 dimensions and figures of merit, torso and brain families, bodies."""

import math

import numpy as np
import pytest
import torch

from tomolearn.data import FAMILIES
from tomolearn.modalities import pet


def test_nema_phantom_has_the_published_dimensions():
    n, fov = 400, 400.0  # 1 mm pixels
    img = FAMILIES["nema-iq"](np.random.default_rng(0), n).numpy()
    pixel_area = (fov / n) ** 2
    g = pet.nema_geometry()
    assert [d for d, _ in g["spheres"]] == [10.0, 13.0, 17.0, 22.0, 28.0, 37.0]
    for d, (cx, cy) in g["spheres"]:
        assert math.hypot(cx, cy) == pytest.approx(57.2)
    hot_area = float((img == 1.0).sum() + ((img > 0.25) & (img < 1.0)).sum() * 0.5) * pixel_area
    spheres_area = sum(math.pi * (d / 2) ** 2 for d in pet.NEMA_SPHERES_MM)
    assert hot_area == pytest.approx(spheres_area, rel=0.03)
    inside = img > 0
    width = inside.any(0).sum() * fov / n
    height = inside.any(1).sum() * fov / n
    assert width == pytest.approx(294.0, abs=2.0) and height == pytest.approx(224.0, abs=2.0)
    assert img[200, 200] == 0.0  # the lung insert on the axis is cold
    mu = pet.body_mu("nema", n, fov)
    assert mu[200, 200] == pet.MU_LUNG and mu[200, 150] == pet.MU_WATER and mu[0, 0] == 0.0


def test_nema_figures_are_perfect_on_the_truth_and_degrade_with_blur():
    img = FAMILIES["nema-iq"](None, 200)
    fom = pet.nema_figures(img)
    for d in pet.NEMA_SPHERES_MM:
        assert fom["variability"][d] == pytest.approx(0.0, abs=1e-12)
    # only the partial-volume rim of the ROIs (2 mm pixels) keeps the truth's CRC below 1
    crc = [fom["crc"][d] for d in pet.NEMA_SPHERES_MM]
    assert crc == sorted(crc) and 0.95 < crc[-1] < 1.0 and crc[0] > 0.85
    assert fom["lung_residual"] == pytest.approx(0.0, abs=1e-9)
    blurred = pet.GaussianPSF((200, 200), 12.0, 2.0)(img[None, None])[0, 0]
    fb = pet.nema_figures(blurred)
    assert fb["crc"][10.0] < fb["crc"][37.0] < fom["crc"][37.0]
    with pytest.raises(ValueError, match="square"):
        pet.nema_figures(np.zeros((3, 4)))


def test_torso_family_is_deterministic_and_in_its_body():
    a = FAMILIES["pet-torso"](np.random.default_rng(3), 64)
    b = FAMILIES["pet-torso"](np.random.default_rng(3), 64)
    c = FAMILIES["pet-torso"](np.random.default_rng(4), 64)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.max()) == 1.0 and float(a.min()) == 0.0
    mu = pet.body_mu("torso", 64, pet.FOV_MM)
    assert float(a.numpy()[mu == 0].max()) == 0.0  # no activity outside the body
    assert (mu == pet.MU_BONE).any() and (mu == pet.MU_LUNG).any()


def test_brain_family_has_grey_to_white_four_to_one():
    pytest.importorskip("nilearn")
    from tomolearn.data.brain import brain_phantom

    rng = np.random.default_rng(7)
    img = FAMILIES["pet-brain"](rng, 100).numpy()
    assert img.shape == (100, 100) and img.max() == pytest.approx(1.0)
    assert img[0].max() == 0.0 and img[:, 0].max() == 0.0  # true size: head inside the FOV
    _, info = brain_phantom(np.random.default_rng(7), 60)
    maps = {k: v.numpy() for k, v in info["maps"].items()}
    expected = 4.0 * maps["gm"] + maps["wm"] + maps["lesion"] + 0.1 * maps["csf"]
    inner = img[20:80, 20:80]
    keep = expected > 0.5
    ratio = inner[keep] / expected[keep]
    # one scale (the maximum) maps 4 GM + WM + 0.1 CSF to the image, lesions aside
    close = np.isclose(ratio, np.median(ratio), rtol=1e-9)
    assert close.mean() > 0.8
    gm_only = (maps["gm"] > 0.7) & keep
    wm_only = (maps["wm"] > 0.7) & keep
    assert np.median(inner[gm_only]) > 2.0 * np.median(inner[wm_only])
