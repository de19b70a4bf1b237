"""The demo study (tomolearn.studies.demo) on any registered task: the toy deblurring task and
sparse-view CT with fewer angles than the bounds were calibrated for."""

import json
import math

import pytest

import tomolearn as tl
from tomolearn.studies.demo import default_methods, run_demo


pytestmark = pytest.mark.usefixtures("one_thread")


def test_default_methods_follow_the_task():
    assert default_methods("toy-deblur") == ["tv"]
    ct = default_methods("ct")
    assert ct[:2] == ["fbp", "tv"] and set(ct) <= set(tl.methods("ct"))


def test_run_demo_on_the_toy_task(tmp_path):
    out = tmp_path / "toy"
    result = run_demo(out, task="toy-deblur", n_images=1, methods=None,
                      families=["ellipses", "rectangles"], bounds=False, progress=False)
    rows = result["results"]
    assert [(r["method"], r["dataset"]) for r in rows] == [("tv", "ellipses/test"),
                                                           ("tv", "rectangles/test")]
    for r in rows:
        assert r["task"] == "toy-deblur" and r["task_spec"]["task"] == "toy-deblur"
        assert math.isfinite(r["psnr"]) and r["psnr"] > 5 and r["reference_psnr"] is None
        assert r["coverage"] is None and r["bounds_note"] == "bounds disabled"
    meta = json.loads((out / "metrics.json").read_text())["meta"]
    assert meta["title"] == "tomolearn demo: toy-deblur"
    assert "CT" not in meta["description"] and "angles" not in meta["description"]
    assert "toy-deblur" in meta["description"] and "image intensity" in meta["description"]
    assert meta["settings"]["task spec"]["seed"] == 0


def test_run_demo_refuses_a_method_the_task_does_not_support(tmp_path):
    with pytest.raises(ValueError, match="'fbp' does not support task 'toy-deblur'"):
        run_demo(tmp_path / "x", task="toy-deblur", methods=["fbp"], families=["ellipses"],
                 progress=False)
    assert not (tmp_path / "x").exists()


def test_run_demo_flags_a_task_unlike_the_calibration(tmp_path):
    """Bounds are calibrated under the registered "ct" task: 10 angles are out of distribution."""
    task = tl.task("ct").updated({"n_angles": 10})
    result = run_demo(tmp_path / "r", task=task, methods=["fbp"], n_images=2,
                      families=["ellipses"], calibration_n=19, progress=False)
    (row,) = result["results"]
    assert row["task"] == "ct" and row["task_spec"]["n_angles"] == 10
    assert row["flagged"] == 1.0 and row["reference_psnr"] is None
    assert all(c["bounds"]["fbp"]["flagged"] for c in result["cases"])
    assert result["meta"]["bounds"]["calibration"]["task"]["n_angles"] == 30
    assert "n_angles=10" in result["meta"]["description"]


def test_run_demo_on_a_complex_task_with_bounds(tmp_path):
    t = tl.task("mri").tiny()
    result = run_demo(tmp_path / "mri", task=t, n_images=2, methods=["zero-filled", "sense"],
                      families=["ellipses"], calibration_n=9, alpha=0.2, progress=False)
    rows = {r["method"]: r for r in result["results"]}
    assert rows["sense"]["psnr"] > rows["zero-filled"]["psnr"] and rows["sense"]["task"] == "mri"
    for r in rows.values():
        assert 0 <= r["coverage"] <= 1 and r["rmse_bound"] > 0 and r["acceleration"] == t.acceleration
    page = (tmp_path / "mri" / "index.html").read_text()
    assert "phase-encoding lines" in page or "k-space" in page
