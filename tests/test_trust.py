"""Everyday trust: no code runs from a checkpoint, model cards are validated, one writer per
output, and outputs are checked (existing files, missing folders) before any work."""

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import tomolearn as tl
from tomolearn import train as T
from tomolearn.files import LockedError, exclusive_lock
from tomolearn.weights import SHIPPED, WeightsError
from tiny_config import tiny_config

TINY = tiny_config(train_size=32, validation_size=4, warmup_steps=1)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tomolearn.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=600, env=ENV, cwd=cwd)


# -- security ------------------------------------------------------------------------------
class _Payload:
    """Unpickling this object writes a marker file: the proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "code ran"))


@pytest.mark.slow
def test_a_crafted_checkpoint_does_not_run_code(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    marker = tmp_path / "pwned"
    torch.save({"format": 1, "payload": _Payload(marker)}, run / "checkpoint.pt")
    trainer = T.trainer_from_config(TINY, out_dir=run, progress=False)
    with pytest.raises(T.CheckpointError, match="refused"):
        trainer.fit(resume=True)
    assert not marker.exists()
    # the same file through the command line: a one-line refusal, and still no code ran
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(json.dumps(TINY))
    proc = cli("train", cfg, "--out", run, "--resume", "--quiet")
    assert proc.returncode == 2 and "refused" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists()
    # a raw pickle (no zip container) is refused as well
    (run / "checkpoint.pt").write_bytes(pickle.dumps({"payload": _Payload(marker)}))
    with pytest.raises(T.CheckpointError):
        trainer.fit(resume=True)
    assert not marker.exists()


def test_checkpoints_hold_only_tensors_and_plain_values_and_still_resume(tmp_path):
    whole = T.trainer_from_config(TINY, out_dir=tmp_path / "a", progress=False)
    whole.fit()
    part = T.trainer_from_config(TINY, out_dir=tmp_path / "b", progress=False)
    part.fit(max_steps=1)
    torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)  # raises on anything else
    torch.manual_seed(99)
    again = T.trainer_from_config(TINY, out_dir=tmp_path / "b", progress=False)
    again.fit(resume=True)
    a, b = whole.model.state_dict(), again.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def _copy_shipped(tmp_path, name="lpd-ellipses"):
    for suffix in (".safetensors", ".json"):
        (tmp_path / f"{name}{suffix}").write_bytes((SHIPPED / f"{name}{suffix}").read_bytes())
    return tmp_path / f"{name}.safetensors", tmp_path / f"{name}.json"


def test_a_card_that_contradicts_its_geometry_or_weights_is_refused(tmp_path):
    weights, card_path = _copy_shipped(tmp_path)
    card = json.loads(card_path.read_text())
    edited = json.loads(json.dumps(card))
    edited["data"]["simulation"]["image_size"] = 64
    card_path.write_text(json.dumps(edited))
    with pytest.raises(WeightsError, match=r"contradicts itself.*domain_shape"):
        tl.load(weights)
    edited = json.loads(json.dumps(card))
    edited["data"]["simulation"]["n_angles"] = 60
    card_path.write_text(json.dumps(edited))
    with pytest.raises(WeightsError, match="contradicts itself"):
        tl.load(weights)
    edited = json.loads(json.dumps(card))
    edited["n_parameters"] = 12
    card_path.write_text(json.dumps(edited))
    with pytest.raises(WeightsError, match="says 12 parameters, the weights hold 253220"):
        tl.load(weights)
    card_path.write_text(json.dumps(card))
    assert tl.load(weights).card["sha256"] == card["sha256"]


@pytest.mark.parametrize("card, message", [
    ([1, 2], "must be a JSON object, got a list"),
    ({"sha256": "x"}, "lacks 'model'"),
    ({"model": "lpd", "sha256": "x"}, "'model' must be an object, got a string"),
    ({"model": {"name": 3}, "sha256": "x"}, "'model.name' must be a string"),
    ({"model": {"name": "lpd", "params": []}, "sha256": "x"}, "'model.params' must be an object"),
    ({"model": {"name": "lpd"}, "sha256": "x", "geometry": {"domain_shape": [128, -1]}},
     "geometry.domain_shape' must be a list of positive integers"),
])
def test_malformed_cards_are_named(tmp_path, card, message):
    weights, card_path = _copy_shipped(tmp_path)
    card_path.write_text(json.dumps(card))
    with pytest.raises(WeightsError, match=message):
        tl.load(weights)


# -- one writer per output -------------------------------------------------------------------
@pytest.mark.slow
def test_the_lock_refuses_a_second_holder_and_is_released(tmp_path):
    lock = tmp_path / "out.lock"
    with exclusive_lock(lock, "the thing"):
        holder = subprocess.run(
            [sys.executable, "-c", "import sys; from tomolearn.files import exclusive_lock\n"
             "try:\n  with exclusive_lock(sys.argv[1], 'the thing'): pass\n"
             "except OSError as e: print(e); sys.exit(3)", str(lock)],
            capture_output=True, text=True, timeout=60)
        assert holder.returncode == 3 and "another tomolearn process" in holder.stdout
    assert not lock.exists()
    with exclusive_lock(lock, "the thing"):  # free again
        pass


@pytest.mark.slow
def test_two_generators_on_one_output_one_refused_file_intact(tmp_path):
    out = tmp_path / "d.h5"
    args = ["data", "generate", "ellipses", "--split", "test", "--n", "600", "--batch-size", "8",
            "--out", out, "--quiet"]
    first = subprocess.Popen([sys.executable, "-m", "tomolearn.cli", *map(str, args)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.time() + 120
    while not (tmp_path / "d.h5.partial").exists() and time.time() < deadline:
        time.sleep(0.05)
    second = cli(*args)
    first_out, first_err = first.communicate(timeout=600)
    assert first.returncode == 0, first_err
    assert second.returncode == 2 and "another tomolearn process" in second.stderr
    ds = tl.data.open_hdf5(out)  # checks the content hash
    assert len(ds) == 600


def test_two_trainings_in_one_run_directory(tmp_path):
    run = tmp_path / "run"
    first = T.trainer_from_config(TINY, out_dir=run, progress=False)
    second = T.trainer_from_config(TINY, out_dir=run, progress=False)
    refused = []

    def callback(step, loss):  # the second run starts while the first is training
        if step == 1:
            with pytest.raises(LockedError, match="run directory"):
                second.fit()
            refused.append(True)

    first.fit(callback=callback)
    assert refused and not (run / "run.lock").exists()


# -- outputs are checked before any work ---------------------------------------------------------
@pytest.mark.parametrize("args", [
    ["info"],
    ["benchmark", "operators", "--geometries", "ellipses", "--batches", "1", "--repeats", "1"],
])
@pytest.mark.slow
def test_json_outputs_are_not_replaced_without_overwrite(tmp_path, args):
    target = tmp_path / "out.json"
    target.write_text("precious")
    proc = cli(*args, "--json", target)
    assert proc.returncode == 2 and "file exists (pass --overwrite" in proc.stderr
    assert target.read_text() == "precious"
    proc = cli(*args, "--json", target, "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert "results" in json.loads(target.read_text()) or "tomolearn" in target.read_text()


@pytest.mark.slow
def test_evaluate_refuses_existing_markdown_and_plot_before_work(tmp_path):
    for flag, name in (("--markdown", "t.md"), ("--plot", "p.png"), ("--json", "r.json")):
        target = tmp_path / name
        target.write_text("precious")
        t0 = time.perf_counter()
        proc = cli("evaluate", "--methods", "fbp", "--n", "2", "--calibration-n", "10",
                   flag, target)
        assert proc.returncode == 2 and "file exists" in proc.stderr
        assert target.read_text() == "precious" and time.perf_counter() - t0 < 30


@pytest.mark.parametrize("args", [
    ["info", "--json", "{missing}/x.json"],
    ["benchmark", "operators", "--json", "{missing}/x.json"],
    ["data", "generate", "ellipses", "--n", "2", "--out", "{missing}/x.h5"],
    ["demo", "--out", "{missing}/report"],
    ["evaluate", "--methods", "fbp", "--plot", "{missing}/p.png"],
])
@pytest.mark.slow
def test_missing_folders_are_refused_unless_parents(tmp_path, args):
    missing = tmp_path / "no" / "such"
    proc = cli(*[a.format(missing=missing) for a in args])
    assert proc.returncode == 2 and "does not exist (pass --parents" in proc.stderr, proc.stderr
    assert not (tmp_path / "no").exists()


@pytest.mark.slow
def test_parents_creates_the_folders(tmp_path):
    target = tmp_path / "a" / "b" / "x.h5"
    proc = cli("data", "generate", "ellipses", "--split", "test", "--n", "2", "--out", target,
               "--parents", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert len(tl.data.open_hdf5(target)) == 2


# -- one-line errors, not tracebacks -------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["benchmark", "operators", "--device", "bogus"], "--device 'bogus' is not a torch device"),
    (["benchmark", "operators", "--device", "cuda:7"], "no such CUDA device here"),
    (["benchmark", "operators", "--repeats", "0"], "--repeats must be at least 1"),
    (["benchmark", "ct", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["benchmark", "ct", "--task-set", "n_angels=3"], "task 'ct' has no field 'n_angels'"),
    (["benchmark", "nowhere"], "unknown benchmark 'nowhere'"),
])
@pytest.mark.slow
def test_bad_options_are_one_line_errors(args, message):
    proc = cli(*args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


# -- refuse before wasting work ------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["demo", "--n-images", "100000000"], "demo needs about"),
    (["demo", "--angles", "100000000"], "demo needs about"),
    (["data", "generate", "ellipses", "--n", "1000000000000", "--out", "x.h5"],
     "data generate needs about"),
    (["reconstruct", "--input", "x.png", "--method", "fbp", "--angles", "100000000", "--out",
      "r.npy"], "reconstruct needs about"),
])
@pytest.mark.slow
def test_jobs_that_cannot_fit_are_refused_at_once_with_the_estimate(tmp_path, args, message):
    t0 = time.perf_counter()
    proc = cli(*args, cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr and "--force" in proc.stderr, proc.stderr
    assert "available" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert time.perf_counter() - t0 < 60 and list(tmp_path.iterdir()) == []  # nothing built


@pytest.mark.slow
def test_a_reconstruction_that_is_not_finite_is_refused_and_not_written(tmp_path):
    import numpy as np
    np.save(tmp_path / "big.npy", np.full((30, 183), 1e38, np.float32))
    proc = cli("reconstruct", "--input", "big.npy", "--method", "fbp", "--out", "r.npy",
               cwd=tmp_path)
    assert proc.returncode == 2 and "non-finite" in proc.stderr and "1e+38" in proc.stderr
    assert "nothing was written" in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.npy"]


def test_long_steps_say_they_are_still_running():
    import io
    from tomolearn.cli.options import still_running
    out = io.StringIO()
    with still_running("tv", after=0.05, every=0.05, stream=out):
        time.sleep(0.23)
    lines = out.getvalue().splitlines()
    assert 2 <= len(lines) <= 5 and all("tv: still running" in line for line in lines)
    quiet = io.StringIO()
    with still_running("fbp", after=5, stream=quiet):
        pass
    assert quiet.getvalue() == ""


@pytest.mark.slow
@pytest.mark.parametrize("verb", ["evaluate", "benchmark", "demo", "reconstruct"])
def test_help_lists_every_registered_method(verb, capsys):
    from tomolearn.cli import main
    with pytest.raises(SystemExit):
        main([verb, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in tl.methods("ct") + (tl.methods() if verb != "reconstruct" else []):
        assert name in text, (verb, name)


def test_info_lists_the_trainable_architectures(tmp_path, capsys):
    from tomolearn.cli import main
    assert main(["info", "--json", str(tmp_path / "i.json")]) == 0
    out = capsys.readouterr().out
    arch = json.loads((tmp_path / "i.json").read_text())["architectures"]
    assert {"lpd", "modl", "varnet"} <= set(arch) and "varnet" in out and all(arch.values())


def test_version():
    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"tomolearn {tl.__version__}"


# -- speed beside other jobs ---------------------------------------------------------------------
@pytest.mark.slow
def test_passive_openmp_waiting_unless_the_user_chose():
    code = "import os, tomolearn; print(os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in ENV.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**env, "OMP_WAIT_POLICY": "ACTIVE"})
    assert out.stdout.strip() == "ACTIVE"


@pytest.mark.slow
@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this OS")
def test_threads_follow_the_cpus_the_process_may_use():
    code = "import tomolearn, torch; print(torch.get_num_threads())"
    env = {k: v for k, v in ENV.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         preexec_fn=lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}))
    assert out.stdout.strip() == "1", out.stderr


def test_contention_benchmark_reports_both_slowdowns(tmp_path):
    pytest.importorskip("astra")
    proc = cli("benchmark", "contention", "--competitors", "1", "--repeats", "3",
               "--json", tmp_path / "c.json")
    assert proc.returncode == 0, proc.stderr
    row = json.loads((tmp_path / "c.json").read_text())["results"][0]
    for key in ("forward_ms_alone", "forward_ms_contended", "astra_ms_alone", "astra_ms_contended"):
        assert row[key] > 0
    assert row["slowdown_ratio"] == pytest.approx(row["slowdown"] / row["astra_slowdown"])
    assert row["competitors"] == 1 and "target <= 2" in proc.stdout
