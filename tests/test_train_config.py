"""A training configuration must be a real one and every value in range (checked before anything
is made), and bfloat16 autocast is used only where the CPU computes in bfloat16 natively."""

import json
import warnings

import pytest
import torch

import tomolearn.hardware as H
from tomolearn import train as T
from tomolearn.cli import main
from tomolearn.registry import build_method, task
from tomolearn.weights import build_model
from tiny_config import tiny_config

torch.set_num_threads(1)

TINY = tiny_config()


def tiny(**train):
    cfg = json.loads(json.dumps(TINY))
    cfg["train"].update(train)
    return cfg


# -- a configuration is a real one ---------------------------------------------------------------
@pytest.mark.parametrize("text, found", [
    ("", "an empty file"),
    ("# only a comment\n\n# and another\n", "only comments"),
    ("- model\n- data\n", "a list"),
    ("lpd\n", "a string"),
    ("42\n", "a number"),
])
def test_a_config_file_that_is_not_a_mapping_is_refused(tmp_path, text, found):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(T.ConfigError, match=str(path).replace("\\", "\\\\") + ".*" + found):
        T.load_config(path)


def test_a_config_must_name_model_and_data(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  steps: 5\n")
    with pytest.raises(T.ConfigError, match=r"c\.yaml: .*missing model, data \(found: train\)"):
        T.load_config(path)
    with pytest.raises(T.ConfigError, match="missing data"):
        T.load_config({"model": {"name": "lgd"}})
    with pytest.raises(T.ConfigError, match=r"missing model\.name"):
        T.load_config({"model": {}, "data": {}})
    with pytest.raises(T.ConfigError, match="missing model, data"):
        T.load_config({})
    cfg = T.load_config({"model": {"name": "lgd"}, "data": {}})  # the defaults fill the rest
    assert cfg["train"]["steps"] == 1000 and cfg["data"]["task"] == "ct"


def test_an_empty_config_starts_nothing_from_the_command_line(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("")
    assert main(["train", str(path), "--quiet", "--out", str(tmp_path / "run")]) == 2
    assert "an empty file" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# -- every value in range ---------------------------------------------------------------------
BAD = [
    ("train.grad_clip", -1, "a positive number or null, got -1"),
    ("train.grad_clip", 0, "a positive number or null"),
    ("train.val_every", 0, "an integer >= 1, got 0"),
    ("train.checkpoint_every", 0, ">= 1"),
    ("train.log_every", -2, ">= 1"),
    ("train.steps", 0, ">= 1"),
    ("train.batch_size", 0, ">= 1"),
    ("train.val_batch_size", 0, ">= 1"),
    ("train.warmup_steps", -1, ">= 0"),
    ("train.lr", 0, "positive finite"),
    ("train.lr", float("inf"), "positive finite"),
    ("train.lr", float("nan"), "positive finite"),
    ("train.weight_decay", -0.1, ">= 0"),
    ("train.betas", [0.9], "two numbers in \\[0, 1\\)"),
    ("train.betas", [0.9, 1.0], "two numbers"),
    ("train.betas", [0.9, 0.99, 0.5], "two numbers"),
    ("train.betas", [0.9, "x"], "two numbers"),
    ("train.ema_decay", 1, "in \\(0, 1\\) or null"),
    ("train.ema_decay", 0.0, "in \\(0, 1\\)"),
    ("train.lr_min_ratio", 1.5, "in \\[0, 1\\]"),
    ("train.lr_min_ratio", -0.1, "in \\[0, 1\\]"),
    ("train.patience", 0, ">= 1 or null"),
    ("train.threads", 0, ">= 1 or null"),
    ("train.optimizer", "sgd", "one of adam, adamw"),
    ("train.loss", "huber", "one of mse, l1"),
    ("train.amp", "yes", "one of auto, bf16"),
    ("data.num_workers", -1, ">= 0"),
    ("data.train_size", 0, ">= 1 or null"),
    ("data.validation_size", 0, ">= 1"),
]


@pytest.mark.parametrize("key, value, message", BAD, ids=[f"{k}={v}" for k, v, _ in BAD])
def test_values_out_of_range_are_refused_with_their_path(key, value, message):
    cfg = tiny()
    section, name = key.split(".")
    cfg[section][name] = value
    with pytest.raises(T.ConfigError, match=key.replace(".", r"\.") + ": must be .*" + message):
        T.load_config(cfg)


def test_good_edge_values_are_accepted():
    cfg = T.load_config(tiny(grad_clip=None, ema_decay=0.999, lr_min_ratio=1, patience=None,
                             threads=1, warmup_steps=0, betas=[0, 0.999], amp="auto",
                             weight_decay=0))
    assert cfg["train"]["grad_clip"] is None and cfg["train"]["lr_min_ratio"] == 1.0


def test_a_device_this_machine_lacks_is_refused_naming_those_it_has():
    with pytest.raises(T.ConfigError, match=r"train\.device: 'cuda:99': no such CUDA device "
                                            r"here; this machine has cpu"):
        T.load_config(tiny(device="cuda:99"))
    with pytest.raises(T.ConfigError, match=r"train\.device: 'gpu' is not a torch device"):
        T.load_config(tiny(device="gpu"))
    assert H.check_device("cpu") == torch.device("cpu")


def test_batch_size_must_split_over_the_torchrun_processes(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(T.ConfigError, match=r"train\.batch_size: 4 is not divisible by the "
                                            r"number of torchrun processes \(3\)"):
        T.load_config(tiny())
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert T.load_config(tiny())["train"]["batch_size"] == 4


def test_invalid_values_make_no_run_directory(tmp_path, capsys):
    run = tmp_path / "run"
    with pytest.raises(T.ConfigError, match=r"train\.val_every"):
        T.trainer_from_config(tiny(val_every=0), out_dir=run, progress=False)
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(tiny()))
    assert main(["train", str(path), "--quiet", "--out", str(run),
                 "--set", "train.grad_clip=-1"]) == 2
    assert "train.grad_clip: must be a positive number or null, got -1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["train", str(path), "--quiet", "--out", str(run), "--max-steps", "0"])
    assert e.value.code == 2 and "--max-steps: must be an integer >= 1" in capsys.readouterr().err
    assert not run.exists()


def test_the_trainer_checks_its_arguments_too(tmp_path):
    op = task(TINY["data"]["simulation"] | {"task": "ct"}).operator()
    model = build_model("lgd", op, n_iter=1, channels=2)
    data = torch.utils.data.TensorDataset(torch.zeros(4, 1, 6, 35), torch.zeros(4, 1, 24, 24))
    with pytest.raises(ValueError, match=r"^grad_clip: must be a positive number or null"):
        T.Trainer(model, data, data, out_dir=tmp_path / "r", steps=2, batch_size=4, grad_clip=-1)
    with pytest.raises(ValueError, match=r"^val_every: must be an integer >= 1"):
        T.Trainer(model, data, data, out_dir=tmp_path / "r", steps=2, batch_size=4, val_every=0)
    t = T.Trainer(model, data, data, out_dir=tmp_path / "r", steps=2, batch_size=4,
                  progress=False, tensorboard=False)
    with pytest.raises(ValueError, match="max_steps"):
        t.fit(max_steps=0)
    assert not (tmp_path / "r").exists()


# -- bfloat16 only where the CPU has it ------------------------------------------------------------
def test_native_bf16_is_read_from_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(H, "_cpu_flags", lambda: frozenset({"avx512f", "avx512bw", "fma"}))
    assert H.cpu_has_native_bf16() is False  # AVX-512 alone only emulates bfloat16
    monkeypatch.setattr(H, "_cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert H.cpu_has_native_bf16() is True
    monkeypatch.setattr(H, "_cpu_flags", lambda: frozenset({"amx_bf16"}))
    assert H.cpu_has_native_bf16() is True
    monkeypatch.setattr(H, "_cpu_flags", lambda: None)  # not Linux: torch's check decides
    assert H.cpu_has_native_bf16() == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@pytest.mark.parametrize("amp", ["auto", "bf16", True])
def test_training_falls_back_to_float32_without_native_bf16(tmp_path, monkeypatch, amp):
    monkeypatch.setattr(H, "cpu_has_native_bf16", lambda: False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = T.trainer_from_config(tiny(amp=amp), out_dir=tmp_path, progress=False)
        dtypes = []
        t.model.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
        t.fit()
    mine = [w for w in caught if "no native bfloat16" in str(w.message)]
    assert len(mine) == 1 and "float32" in str(mine[0].message)
    assert t.amp_dtype is None and t.hyper["amp"] == "off"
    assert dtypes and set(dtypes) == {torch.float32}
    monkeypatch.setattr(H, "cpu_has_native_bf16", lambda: True)
    assert T.trainer_from_config(tiny(amp=amp), out_dir=tmp_path / "b",
                                 progress=False).amp_dtype == torch.bfloat16


def test_shipped_methods_amp_falls_back_to_float32_without_native_bf16(monkeypatch):
    ct = task("ct")
    y = torch.randn(1, 1, ct.n_angles, ct.n_detectors) * 0.1
    plain = build_method("lgd", ct, params={"amp": False})(y)
    monkeypatch.setattr(H, "cpu_has_native_bf16", lambda: False)
    recon = build_method("lgd", ct, params={"amp": True})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a, b = recon(y), recon(y)
    assert sum("no native bfloat16" in str(w.message) for w in caught) == 1
    assert a.dtype == torch.float32 and torch.equal(a, plain) and torch.equal(b, plain)


def test_speed_benchmark_reports_bf16_as_null_without_native_bf16(monkeypatch):
    from tomolearn.studies import format_speed_table, learned_speed

    monkeypatch.setattr(H, "cpu_has_native_bf16", lambda: False)
    (row,) = learned_speed(["lgd"], batch=1, repeats=1, train_batch=1)
    assert row["bf16_nchw_ms"] is None and row["bf16_channels_last_ms"] is None
    assert row["fp32_nchw_ms"] > 0 and row["train_samples_per_s"] > 0
    assert row["train_dtype"] == "float32" and "no native bfloat16" in row["note"]
    table = format_speed_table([row])
    assert "bf16 not timed" in table and "fp32); torch threads" in table
