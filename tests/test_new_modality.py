"""A new modality costs one folder: the toy deblurring task of tests/toy_deblur.py, made from
public extension points only, joins the batteries and gets a classical solver and a conformal
bound without any change to tomolearn (what it does not get yet is in docs/architecture.md)."""

import torch

import tomolearn as tl
from tomolearn import uq
from tomolearn.data import SimulatedDataset
from tomolearn.operators import examples
from tomolearn.registry import build_method, shifted, shifts, task


def test_registered_everywhere():
    assert "toy-deblur" in tl.tasks() and "toy.gaussian-blur" in examples()
    assert "tv" in tl.methods("toy-deblur") and "fbp" not in tl.methods("toy-deblur")
    assert shifts("toy-deblur") == ["more-blur"]
    assert shifted(task("toy-deblur"), "more-blur").sigma == 2.5


def test_tv_deblurs_better_than_the_data_and_a_bound_covers():
    t = task("toy-deblur")
    calibration = SimulatedDataset("ellipses", "validation", t, size=40)
    test = SimulatedDataset("ellipses", "test", t, size=40)
    tv = build_method("tv", t, params={"lam": 0.01, "n_iter": 60})
    y_cal, x_cal = calibration.batch(range(40))
    y, x = test.batch(range(40))
    x_hat = tv(y)
    assert x_hat.shape == x.shape
    gain = tl.metrics.psnr(x_hat, x).mean() - tl.metrics.psnr(t.initial_reconstruction(y), x).mean()
    assert gain > 1.0, gain
    bound = uq.ImageErrorBound.from_images(tv(y_cal), x_cal, alpha=0.2)
    assert bound.n == 40 and torch.isfinite(torch.tensor(bound.bound))
    assert float(bound.covers(uq.image_rmse(x_hat, x)).float().mean()) >= 0.6
