"""The training engine: schedule, config validation, checkpoints and resume, NaN handling,
EMA, mixed precision, weights files, and torchrun data-parallel equivalence."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import tomolearn as tl
from tomolearn import train as T
from tomolearn.weights import WeightsError, build_model, load_weights, save_weights
from tiny_config import tiny_config as _shared_tiny_config

torch.set_num_threads(1)

TINY = _shared_tiny_config(train_size=32, validation_size=4, steps=8, val_every=4,
                           checkpoint_every=2, warmup_steps=2)


def tiny_config(**train):
    cfg = json.loads(json.dumps(TINY))
    cfg["train"].update(train)
    return cfg


def weights_of(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


# -- schedule ---------------------------------------------------------------------------
def test_cosine_schedule_warmup_and_decay():
    f = [T.cosine_schedule(s, 10, 2, 0.1) for s in range(10)]
    assert f[0] == pytest.approx(0.5) and f[1] == pytest.approx(1.0)
    assert f[2] == pytest.approx(1.0)  # start of the cosine
    assert all(a >= b for a, b in zip(f[2:], f[3:]))
    assert T.cosine_schedule(10, 10, 2, 0.1) == pytest.approx(0.1)
    assert T.cosine_schedule(6, 10, 2, 0.0) == pytest.approx(0.5)  # half-way


# -- configuration -----------------------------------------------------------------------
def test_config_defaults_and_unknown_keys(tmp_path):
    cfg = T.load_config({"model": {"name": "lpd"}, "data": {}})
    assert cfg["train"]["batch_size"] == 16 and cfg["model"]["name"] == "lpd"
    with pytest.raises(T.ConfigError, match=r"train\.bach_size"):
        T.load_config({"train": {"bach_size": 4}})
    with pytest.raises(T.ConfigError, match=r"unknown configuration key modle"):
        T.load_config({"modle": {}})
    with pytest.raises(T.ConfigError, match=r"train\.lr: expected int or float, got str"):
        T.load_config({"train": {"lr": "fast"}})
    with pytest.raises(T.ConfigError, match=r"train\.steps: expected int, got bool"):
        T.load_config({"train": {"steps": True}})
    with pytest.raises(T.ConfigError, match=r"model\.name"):
        T.load_config({"model": {"name": "resnet"}})
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  steps: 5\n  batch_size: [1]\n")
    with pytest.raises(T.ConfigError, match=r"train\.batch_size: expected int, got list"):
        T.load_config(path)
    path.write_text("train: {steps: 5\n")
    with pytest.raises(T.ConfigError, match="not valid YAML"):
        T.load_config(path)
    with pytest.raises(FileNotFoundError):
        T.load_config(tmp_path / "missing.yaml")


def test_config_overrides_set_nested_values_and_name_bad_keys():
    base = tiny_config()
    cfg = T.load_config(base, ["train.seed=7", "model.params.channels=6", "data.shift=noise-5%",
                               "train.betas=[0.5, 0.9]"])
    assert cfg["train"]["seed"] == 7 and cfg["model"]["params"] == {"n_iter": 2, "channels": 6}
    assert cfg["data"]["shift"] == "noise-5%" and cfg["train"]["betas"] == [0.5, 0.9]
    assert base["train"]["seed"] == 3  # the caller's dict is not modified
    with pytest.raises(T.ConfigError, match=r"unknown configuration key train\.sed"):
        T.load_config(base, ["train.sed=1"])
    with pytest.raises(T.ConfigError, match="expected KEY.PATH=VALUE"):
        T.load_config(base, ["train.seed"])
    with pytest.raises(T.ConfigError, match=r"train\.seed is not a mapping"):
        T.load_config(base, ["train.seed.x=1"])
    with pytest.raises(T.ConfigError, match=r"train\.seed: expected int, got str"):
        T.load_config(base, ["train.seed=one"])


def test_config_bad_model_params_and_data_file(tmp_path):
    cfg = tiny_config()
    cfg["model"]["params"]["widht"] = 3
    with pytest.raises(T.ConfigError, match="model.params"):
        T.trainer_from_config(cfg, out_dir=tmp_path / "r", progress=False)
    cfg = tiny_config()
    cfg["data"]["train_file"] = str(tmp_path / "nope.h5")
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        T.trainer_from_config(cfg, out_dir=tmp_path / "r", progress=False)


def test_hdf5_file_with_other_spec_is_refused(tmp_path):
    from tomolearn.ct import SimulationSpec
    from tomolearn.data import SimulatedDataset, generate_hdf5

    spec = SimulationSpec.from_dict(TINY["data"]["simulation"]).replace(n_angles=7)
    file = tmp_path / "t.h5"
    generate_hdf5(SimulatedDataset("ellipses", "train", spec, size=8), file)
    cfg = tiny_config()
    cfg["data"]["train_file"] = str(file)
    with pytest.raises(T.ConfigError, match="n_angles"):
        T.trainer_from_config(cfg, out_dir=tmp_path / "r", progress=False)


# -- training, logs, weights ----------------------------------------------------------------
def test_init_weights_fine_tunes_from_trained_weights(tmp_path):
    first = T.trainer_from_config(tiny_config(steps=4, val_every=4), out_dir=tmp_path / "a",
                                  progress=False)
    first.fit()
    trained, card = load_weights(tmp_path / "a" / "final.safetensors")
    cfg = tiny_config(steps=4, val_every=4)
    cfg["model"]["init_weights"] = str(tmp_path / "a" / "final.safetensors")
    second = T.trainer_from_config(cfg, out_dir=tmp_path / "b", progress=False)
    start = second.model.state_dict()
    assert all(torch.equal(start[k].float(), trained[k]) for k in trained)
    fresh = T.trainer_from_config(tiny_config(), out_dir=tmp_path / "c", progress=False)
    assert not all(torch.equal(fresh.model.state_dict()[k].float(), trained[k]) for k in trained)
    second.fit()
    _, card2 = load_weights(tmp_path / "b" / "final.safetensors")
    assert card2["model"]["init_weights"]["sha256"] == card["sha256"]
    assert card2["model"]["init_weights"]["weights"].endswith("final.safetensors")
    # another architecture size, a missing file, a file that is not weights: one-line errors
    other = json.loads(json.dumps(cfg))
    other["model"]["params"] = dict(other["model"]["params"], n_iter=1)
    with pytest.raises(T.ConfigError, match=r"model\.init_weights: .* same architecture"):
        T.trainer_from_config(other, out_dir=tmp_path / "d", progress=False)
    cfg["model"]["init_weights"] = str(tmp_path / "missing.safetensors")
    with pytest.raises(T.ConfigError, match=r"model\.init_weights: .*missing\.safetensors"):
        T.trainer_from_config(cfg, out_dir=tmp_path / "e", progress=False)
    cfg["model"]["init_weights"] = "config.yaml"
    with pytest.raises(T.ConfigError, match=r"shipped model .* or a \.safetensors file"):
        T.trainer_from_config(cfg, out_dir=tmp_path / "f", progress=False)


def test_fit_learns_and_writes_logs_and_cards(tmp_path):
    cfg = tiny_config(steps=24, tensorboard=True, ema_decay=0.5, val_every=8)
    trainer = T.trainer_from_config(cfg, out_dir=tmp_path, progress=False)
    first = trainer.validate()["psnr"]
    summary = trainer.fit()
    assert summary["stopped"] == "finished" and summary["steps"] == 24
    assert summary["best"]["psnr"] > first + 3.0
    names = {p.name for p in tmp_path.iterdir()}
    assert {"checkpoint.pt", "train.csv", "validation.csv", "best.safetensors", "best.json",
            "final.safetensors", "final.json"} <= names
    assert any(n.startswith("events.out.tfevents") for n in names)
    rows = (tmp_path / "train.csv").read_text().splitlines()
    assert rows[0].startswith("step,epoch,samples,lr,loss") and len(rows) == 25
    assert len((tmp_path / "validation.csv").read_text().splitlines()) == 4  # steps 8, 16, 24
    state, card = load_weights(tmp_path / "best.safetensors")
    for key in ("model", "geometry", "data", "training", "validation", "tomolearn", "sha256"):
        assert key in card
    assert card["training"]["samples_seen"] == card["training"]["steps_done"] * 4
    assert card["data"]["simulation"]["n_angles"] == 6
    # the saved weights are the EMA, not the raw weights
    final, _ = load_weights(tmp_path / "final.safetensors")
    ema = trainer.eval_state_dict()
    assert all(torch.equal(final[k], ema[k].float()) for k in final)
    assert not all(torch.equal(final[k], trainer.model.state_dict()[k]) for k in final)
    # a loaded model reproduces the validation PSNR of its card
    model = tl.load(tmp_path / "best.safetensors")
    y, x = trainer.val_data[0][0][None], trainer.val_data[0][1][None]
    assert torch.isfinite(model(y)).all() and model.card["sha256"] == card["sha256"]


def test_resume_in_process_is_bit_exact(tmp_path):
    whole = T.trainer_from_config(tiny_config(), out_dir=tmp_path / "a", progress=False)
    whole.fit()
    part = T.trainer_from_config(tiny_config(), out_dir=tmp_path / "b", progress=False)
    assert part.fit(max_steps=3)["stopped"] == "max_steps"
    # a new process would build a new trainer: do the same
    torch.manual_seed(12345)  # disturb the global RNG; the checkpoint must restore it
    again = T.trainer_from_config(tiny_config(), out_dir=tmp_path / "b", progress=False)
    assert again.fit(resume=True)["steps"] == 8
    a, b = weights_of(whole), weights_of(again)
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = (tmp_path / "b" / "train.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == [str(s) for s in range(1, 9)]


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    """Kill the CLI mid-run with SIGKILL, resume it, compare weights with an uninterrupted run."""
    import yaml

    cfg = tiny_config(steps=40, checkpoint_every=1, val_every=100)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "tomolearn", "train", str(config), "--quiet", "--out"]
    subprocess.run(cmd + [str(tmp_path / "whole")], check=True, env=env, timeout=300)

    run = tmp_path / "killed"
    proc = subprocess.Popen(cmd + [str(run)], env=env)
    deadline = time.time() + 120
    while time.time() < deadline:
        if (run / "train.csv").exists() and len((run / "train.csv").read_text().splitlines()) > 8:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = torch.load(run / "checkpoint.pt", weights_only=False)["step"]
    assert 0 < step < 40, "the run was not interrupted part-way; make it longer"
    subprocess.run(cmd + [str(run), "--resume"], check=True, env=env, timeout=300)
    a, _ = load_weights(tmp_path / "whole" / "final.safetensors")
    b, _ = load_weights(run / "final.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)



@pytest.mark.slow
def test_cli_set_overrides_the_configuration(tmp_path):
    import yaml

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config()))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "tomolearn", "train", str(config), "--quiet", "--out",
                    str(tmp_path / "r"), "--set", "train.steps=2", "--set", "train.seed=5"],
                   check=True, env=env, timeout=300)
    card = json.loads((tmp_path / "r" / "final.json").read_text())
    assert card["training"]["seed"] == 5 and card["training"]["steps_done"] == 2
    proc = subprocess.run([sys.executable, "-m", "tomolearn", "train", str(config), "--out",
                           str(tmp_path / "s"), "--set", "train.sed=5"],
                          env=env, timeout=300, capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown configuration key train.sed" in proc.stderr
    assert not (tmp_path / "s").exists()

def test_refuses_existing_run_missing_checkpoint_and_other_architecture(tmp_path):
    t = T.trainer_from_config(tiny_config(steps=2), out_dir=tmp_path, progress=False)
    t.fit()
    again = T.trainer_from_config(tiny_config(steps=2), out_dir=tmp_path, progress=False)
    with pytest.raises(FileExistsError, match="already holds a training run"):
        again.fit()
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        T.trainer_from_config(tiny_config(), out_dir=tmp_path / "empty", progress=False).fit(resume=True)
    other = tiny_config(steps=2)
    other["model"] = {"name": "lpd", "params": {"n_iter": 1, "channels": 4}}
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(T.CheckpointError, match="LearnedGradientDescent"):
        T.trainer_from_config(other, out_dir=tmp_path, progress=False).fit(resume=True)
    bigger = tiny_config(steps=2, batch_size=8)
    with pytest.raises(T.CheckpointError, match="batch_size"):
        T.trainer_from_config(bigger, out_dir=tmp_path, progress=False).fit(resume=True)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(T.CheckpointError, match="not a readable checkpoint"):
        T.trainer_from_config(tiny_config(), out_dir=tmp_path / "junk", progress=False).fit(resume=True)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before


class _PoisonedAfter(torch.utils.data.Dataset):
    """Wraps a dataset; from ``calls`` items on, ground truths are NaN."""

    def __init__(self, base, calls):
        self.base, self.calls, self.count = base, calls, 0

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        self.count += 1
        y, x = self.base[i]
        return (y, x * float("nan")) if self.count > self.calls else (y, x)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    t = T.trainer_from_config(tiny_config(), out_dir=tmp_path, progress=False)
    t.train_data = _PoisonedAfter(t.train_data, calls=4 * 5)  # steps 1..5 are fine
    with pytest.raises(T.TrainingDivergedError, match=r"step 6.*step 4"):
        t.fit()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_mixed_precision_bf16_trains(tmp_path):
    t = T.trainer_from_config(tiny_config(amp="bf16", steps=12), out_dir=tmp_path, progress=False)
    assert t.amp_dtype == torch.bfloat16
    start = t.validate()["psnr"]
    summary = t.fit()
    assert math.isfinite(summary["best"]["psnr"]) and summary["best"]["psnr"] > start
    assert all(p.dtype == torch.float32 for p in t.model.parameters())


def test_operator_runs_in_float32_under_autocast():
    A = tl.ct.RayTransform(tl.ct.ParallelBeam2D(n_angles=5, n_detectors=23), image_shape=(16, 16))
    x = torch.rand(2, 1, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = A(x.bfloat16())
        back = A.adjoint(y)
    assert y.dtype == torch.float32 and back.dtype == torch.float32
    torch.testing.assert_close(y, A(x.bfloat16().float()))


# -- weights files ----------------------------------------------------------------------------
def test_weights_roundtrip_hash_and_overwrite(tmp_path):
    op = tl.ct.RayTransform(tl.ct.ParallelBeam2D(n_angles=5, n_detectors=23), image_shape=(16, 16))
    model = build_model("lpd", op, n_iter=1, channels=4)
    path = tmp_path / "m.safetensors"
    save_weights(path, model.state_dict(), {"model": {"name": "lpd"}})
    with pytest.raises(FileExistsError):
        save_weights(path, model.state_dict(), {"model": {"name": "lpd"}})
    state, card = load_weights(path)
    assert card["n_parameters"] == model.n_parameters
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="hash"):
        load_weights(path)
    (tmp_path / "m.json").unlink()
    with pytest.raises(FileNotFoundError, match="model card"):
        load_weights(path)
    with pytest.raises(FileNotFoundError, match="no shipped model"):
        tl.load("lpd-nonsense")


def test_members_name_1_2_load_as_a_deep_ensemble(tmp_path, monkeypatch):
    import shutil

    import tomolearn.weights as W
    from tomolearn.learned import DeepEnsemble

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for seed in (1, 2):
        t = T.trainer_from_config(tiny_config(steps=2, seed=seed, val_every=100),
                                  out_dir=tmp_path / f"r{seed}", progress=False)
        t.fit()
        for ext in (".safetensors", ".json"):
            shutil.copyfile(tmp_path / f"r{seed}" / f"final{ext}", shipped / f"tiny-{seed}{ext}")
    shutil.copyfile(shipped / "tiny-1.safetensors", shipped / "single.safetensors")
    shutil.copyfile(shipped / "tiny-1.json", shipped / "single.json")
    monkeypatch.setattr(W, "SHIPPED", shipped)
    assert W.available() == ["single", "tiny", "tiny-1", "tiny-2"]
    assert W.ensemble_members("tiny") == ["tiny-1", "tiny-2"]
    ens = tl.load("tiny")
    assert isinstance(ens, DeepEnsemble) and ens.n_members == 2 and not ens.training
    card = ens.card
    assert card["model"]["class"] == "DeepEnsemble" and len(card["members"]) == 2
    assert card["n_parameters"] == 2 * tl.load("tiny-1").n_parameters == ens.n_parameters
    assert card["training"]["samples_seen"] == 2 * 2 * 4
    spec = tl.ct.SimulationSpec.from_dict(card["data"]["simulation"])
    y, _ = tl.data.SimulatedDataset("ellipses", "test", spec, size=2).batch([0, 1])
    with torch.no_grad():
        each = ens.members(y)
        assert torch.equal(each[0], tl.load("tiny-1")(y)) and torch.equal(each[1], tl.load("tiny-2")(y))
        assert torch.allclose(ens(y), each.mean(0))
    (shipped / "tiny-2.safetensors").unlink()
    assert "tiny" not in W.available()  # one member is not an ensemble
    with pytest.raises(FileNotFoundError, match="no shipped model 'tiny'"):
        tl.load("tiny")


@pytest.mark.slow
def test_shipped_deep_ensemble_of_independent_lpd_members():
    from tomolearn import uq
    from tomolearn.learned import DeepEnsemble, LearnedPrimalDual
    from tomolearn.weights import available, ensemble_members

    assert "lpd-ensemble" in available()
    names = ensemble_members("lpd-ensemble")
    assert len(names) >= 4
    ens = tl.load("lpd-ensemble")
    assert isinstance(ens, DeepEnsemble) and ens.n_members == len(names)
    assert all(isinstance(m, LearnedPrimalDual) for m in ens.ensemble)
    seeds = [c["training"]["seed"] for c in ens.card["members"]]
    assert len(set(seeds)) == len(seeds)  # independently initialised and shuffled
    assert all(c["validation"]["psnr"] > 25.0 for c in ens.card["members"])
    y, x = tl.data.ellipses_benchmark("test", size=2).batch([0, 1])
    with torch.no_grad():
        each = ens.members(y)
    assert float(tl.metrics.psnr(each.mean(0), x).mean()) > 25.0
    spread = each.std(0)
    assert float(spread.mean()) > 1e-3  # the members disagree, and most where they err:
    r = uq.uncertainty_error_correlation(spread + 1e-6, each.mean(0), x)
    assert float(r.mean()) > 0.1
    more = tl.ct.SimulationSpec().replace(n_angles=60).operator()
    assert tl.load("lpd-ensemble", op=more)(torch.zeros(1, 1, 60, 183)).shape == (1, 1, 128, 128)
    small = tl.ct.RayTransform(tl.ct.ParallelBeam2D(n_angles=30, n_detectors=91), image_shape=(64, 64))
    with pytest.raises(ValueError, match="image shape"):
        tl.load("lpd-ensemble", op=small)


@pytest.mark.parametrize("name", ["fbpconvnet-ellipses", "lgd-ellipses", "lpd-ellipses"])
def test_shipped_weights_load_and_check_geometry(name):
    from tomolearn.weights import available

    assert name in available()
    model = tl.load(name)
    card = model.card
    assert card["data"]["simulation"]["n_angles"] == 30 and card["training"]["steps_done"] > 0
    assert card["validation"]["psnr"] > 25.0
    ds = tl.data.ellipses_benchmark("test", size=2)
    y, x = ds.batch([0, 1])
    with torch.no_grad():
        out = model(y)
    assert out.shape == x.shape
    assert float(tl.metrics.psnr(out, x).mean()) > 25.0
    fan = tl.ct.RayTransform(tl.ct.FanBeam2D(n_angles=30, n_detectors=183, source_radius=500,
                                             detector_radius=500), image_shape=(128, 128))
    with pytest.raises(ValueError, match="geometry type"):
        tl.load(name, op=fan)
    small = tl.ct.RayTransform(tl.ct.ParallelBeam2D(n_angles=30, n_detectors=91), image_shape=(64, 64))
    with pytest.raises(ValueError, match="image shape"):
        tl.load(name, op=small)
    with pytest.raises(ValueError, match="expects measurements of shape"):
        model(torch.zeros(1, 1, 60, 183))
    more = tl.ct.SimulationSpec().replace(n_angles=60).operator()
    assert tl.load(name, op=more)(torch.zeros(1, 1, 60, 183)).shape == (1, 1, 128, 128)


# -- data-parallel -------------------------------------------------------------------------------
@pytest.mark.slow
def test_torchrun_two_processes_equal_single_process(tmp_path):
    """DDP on 2 CPU processes (gloo) with global batch 4 == 1 process with batch 4."""
    import yaml

    cfg = tiny_config(steps=6, val_every=3, checkpoint_every=3)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "tomolearn", "train", str(config), "--quiet",
                    "--out", str(tmp_path / "single")], check=True, env=env, timeout=300)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc_per_node", "2", "-m", "tomolearn", "train", str(config), "--quiet",
                    "--out", str(tmp_path / "ddp")], check=True, env=env, timeout=300)
    a, card_a = load_weights(tmp_path / "single" / "final.safetensors")
    b, card_b = load_weights(tmp_path / "ddp" / "final.safetensors")
    assert card_b["training"]["processes"] == 2 and card_a["training"]["processes"] == 1
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6)
    la = (tmp_path / "single" / "train.csv").read_text().splitlines()
    lb = (tmp_path / "ddp" / "train.csv").read_text().splitlines()
    assert len(la) == len(lb) == 7


def test_trainer_on_user_tensors_and_load_with_operator(tmp_path):
    """The Python route of docs/training.md: own pairs, own operator, then tl.load(path, op=...)."""
    op = tl.ct.RayTransform(tl.ct.ParallelBeam2D(n_angles=6, n_detectors=23), image_shape=(16, 16))
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 1, 16, 16, generator=g)
    data = torch.utils.data.TensorDataset(op(x).detach(), x)
    model = build_model("lgd", op, n_iter=2, channels=4)
    trainer = T.Trainer(model, data, data, out_dir=tmp_path, steps=4, batch_size=4, val_every=2,
                        tensorboard=False, progress=False,
                        card={"model": {"name": "lgd", "params": {"n_iter": 2, "channels": 4}}})
    trainer.fit()
    loaded = tl.load(tmp_path / "final.safetensors", op=op)
    torch.testing.assert_close(loaded(data[0][0][None]), trainer.model.eval()(data[0][0][None]))
    with pytest.raises(ValueError, match="card has no usable data spec|pass"):
        tl.load(tmp_path / "final.safetensors")
    other = tl.ct.RayTransform(tl.ct.ParallelBeam2D(n_angles=6, n_detectors=23), image_shape=(20, 20))
    with pytest.raises(ValueError, match="domain_shape"):
        tl.load(tmp_path / "final.safetensors", op=other)
