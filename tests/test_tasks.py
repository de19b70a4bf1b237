"""The task protocol and registry: names, spec round trips, content hashes, shifts, bad specs."""

import json

import pytest
import torch

import tomolearn as tl
from tomolearn import studies
from tomolearn.registry import shifted, shifts, task


def test_registered_tasks_and_the_ct_task_is_divals_benchmark():
    assert "ct" in tl.tasks()
    t = tl.task("ct")
    assert t.kind == "ct" and t.image_shape == (128, 128) and t.data_shape == (30, 183)
    assert t.likelihood in tl.registry.LIKELIHOODS and t.image_dtype == torch.float32
    assert t == tl.data.ellipses_benchmark("test").simulation


@pytest.mark.parametrize("kind", tl.tasks())
def test_spec_json_round_trip_and_content_hash(kind):
    t = task(kind)
    spec = json.loads(json.dumps(t.spec()))
    assert spec["task"] == kind and task(spec) == t and task(spec).content_hash() == t.content_hash()
    assert len(t.content_hash()) == 64
    assert t.replace(seed=t.seed + 1).content_hash() != t.content_hash()


@pytest.mark.parametrize("kind", tl.tasks())
def test_initial_reconstruction_and_simulation_shapes(kind):
    t = type(task(kind)).tiny()
    x = torch.zeros((2, 1) + t.image_shape, dtype=torch.float64)
    y = t.simulate(x, [torch.Generator().manual_seed(i) for i in range(2)])
    assert y.shape == (2, 1) + t.data_shape
    # data in the task's working precision: float32, or complex64 for a complex task
    assert t.initial_reconstruction(y.to(t.image_dtype)).shape == (2, 1) + t.image_shape
    # the declared capabilities tell the truth (methods are listed without building operators)
    assert t.linear == isinstance(t.operator(), tl.operators.LinearOperator)
    assert t.image_dtype.is_complex == t.operator().requires_complex


def test_shifts_are_registered_per_task():
    names = shifts("ct")
    assert {"angles-20", "limited-angle", "low-dose", "noise-5%"} <= set(names)
    assert shifted(task("ct"), "angles-20").data_shape == (20, 183)
    with pytest.raises(ValueError, match="unknown shift 'sideways' for task 'ct'; expected one of"):
        shifted(task("ct"), "sideways")


@pytest.mark.parametrize("spec, message", [
    ({"task": "ct", "n_angels": 30}, r"unknown ct task spec field\(s\): n_angels; expected some of"),
    ({"task": "spect"}, r"unknown task 'spect'; registered: ct, mri"),
    ({"n_angles": 30}, "needs a 'task' key"),
    ("spect", "unknown task 'spect'"),
    ({"task": "ct", "n_angles": 0}, "n_angles must be a positive int"),
])
def test_bad_specs_are_named(spec, message):
    with pytest.raises(ValueError, match=message):
        task(spec)
    with pytest.raises(TypeError, match="expected a task name, spec dict or Task"):
        task(3)


@pytest.mark.parametrize("kind", tl.tasks())
def test_the_setting_names_headline_fields_and_rows_carry_it(kind):
    t = type(task(kind)).tiny()
    setting = t.setting()
    assert len(setting) == len(t.headline) and json.loads(json.dumps(setting)) == setting
    rows = studies.benchmark([tl.methods(t)[0]], n=1, task=t)
    assert all(rows[0][k] == v for k, v in setting.items()) and rows[0]["task"] == kind


def test_ct_and_mri_settings():
    assert tl.task("ct").setting() == {"n_angles": 30, "noise_level": 0.025}
    assert tl.task("mri").setting()["acceleration"] == 4.0


@pytest.mark.parametrize("kind", tl.tasks())
def test_benchmark_shifts_are_registered_shifts(kind):
    t = task(kind)
    assert set(t.benchmark_shifts) <= set(shifts(t)) and t.families[0] in tl.data.FAMILIES


def test_the_mri_benchmark_reports_4x_and_8x(tmp_path, capsys):
    from tomolearn.cli import main
    out = tmp_path / "b.json"
    assert main(["benchmark", "mri", "--task-set", "image_size=24", "--task-set", "n_coils=4",
                 "--methods", "zero-filled", "--n", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert [(r["method"], r["acceleration"]) for r in rows] == [("zero-filled", 4.0),
                                                                 ("zero-filled", 8.0)]
    assert rows[0]["psnr"] > rows[1]["psnr"]
