"""A new modality costs one folder: the toy deblurring task of tests/toy_deblur.py, made from
public extension points only, joins the batteries and gets a classical solver and a conformal
bound without any change to tomolearn (what it does not get yet is in docs/architecture.md)."""

import pytest
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


def test_a_learned_method_trains_on_it_and_loads_with_its_task(tmp_path):
    from tomolearn.train import trainer_from_config

    config = {"model": {"name": "lgd", "params": {"n_iter": 2, "channels": 4, "init": "initial"}},
              "data": {"task": "toy-deblur", "train_size": 16, "validation_size": 4},
              "train": {"steps": 4, "batch_size": 4, "val_every": 4, "log_every": 1,
                        "checkpoint_every": 2, "tensorboard": False}}
    summary = trainer_from_config(config, out_dir=tmp_path, progress=False).fit()
    assert summary["steps"] == 4 and summary["best"]["psnr"] > 10
    model = tl.load(tmp_path / "final.safetensors")
    assert model.card["task"]["task"] == "toy-deblur" and model.task == task("toy-deblur")
    y, x = SimulatedDataset("ellipses", "test", model.task, size=2).batch([0, 1])
    assert model(y.float()).shape == x.shape
    config["data"]["task"] = "no-such-task"
    with pytest.raises(ValueError, match=r"data\.task: unknown task 'no-such-task'; registered"):
        trainer_from_config(config, out_dir=tmp_path / "other", progress=False)


def test_a_card_naming_an_unknown_task_is_refused(tmp_path):
    import json

    from tomolearn.weights import SHIPPED, WeightsError

    for suffix in (".safetensors", ".json"):
        (tmp_path / f"m{suffix}").write_bytes((SHIPPED / f"lgd-ellipses{suffix}").read_bytes())
    card = json.loads((tmp_path / "m.json").read_text())
    card["task"] = {"task": "spect", "n_angles": 64}
    (tmp_path / "m.json").write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="unknown task 'spect'"):
        tl.load(tmp_path / "m.safetensors")
