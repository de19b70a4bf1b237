"""The command line, driven as a user drives it (subprocess)."""

import json
import subprocess
import sys

import pytest


def run(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "tomolearn.cli", *args], capture_output=True,
                          text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_info_reports_versions_devices_threads_and_backends(tmp_path):
    out = tmp_path / "info.json"
    proc = run("info", "--json", str(out))
    assert "torch" in proc.stdout and "threads" in proc.stdout
    info = json.loads(out.read_text())
    assert info["devices"][0] == "cpu"
    assert info["operator_backends"]["ellipses"]["backend"] == "sparse"
    assert info["operator_backends"]["lodopab"]["stored_angles"] == 500
    assert info["torch_threads"] >= 1


def test_demo_runs_end_to_end(tmp_path):
    out = tmp_path / "demo.json"
    proc = run("demo", "--n-images", "2", "--seed", "3", "--json", str(out))
    results = json.loads(out.read_text())["results"]
    assert [(r["image"], r["method"]) for r in results] == [
        (image, method) for image in ("shepp-logan", "ellipses-0", "ellipses-1") for method in ("fbp", "tv")]
    for r in results:
        assert 15 < r["psnr"] < 40 and 0.3 < r["ssim"] < 1 and r["seconds_per_image"] > 0
    assert "PSNR" in proc.stdout


def test_benchmark_operators_json_fields(tmp_path):
    out = tmp_path / "ops.json"
    proc = run("benchmark", "operators", "--geometries", "ellipses", "--batches", "1,4",
               "--repeats", "1", "--json", str(out))
    rows = json.loads(out.read_text())["results"]
    assert [(r["geometry"], r["batch"]) for r in rows] == [("ellipses", 1), ("ellipses", 4)]
    for r in rows:
        for key in ("forward_ms", "adjoint_ms", "astra_forward_ms", "astra_adjoint_ms",
                    "forward_ratio", "adjoint_ratio", "peak_rss_mb"):
            assert r[key] > 0, key
    assert "ratio" in proc.stdout


@pytest.mark.parametrize("args,message", [
    (["benchmark", "operators", "--geometries", "nope"], "unknown geometry 'nope'"),
    (["benchmark", "operators", "--batches", "0"], "--batches must be positive"),
    (["benchmark", "operators", "--device", "cuda:7"], None),
    (["demo", "--n-images", "0"], "--n-images must be at least 1"),
    (["demo", "--noise", "-0.1"], "--noise must be"),
    (["info", "--json", "/"], "is a directory"),
])
def test_bad_input_gives_one_line_and_status_2(args, message):
    proc = run(*args, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 or lines[-1].startswith("tomolearn")
    if message:
        assert message in proc.stderr


def test_help_has_examples():
    for verb in ("info", "demo", "benchmark"):
        assert "examples:" in run(verb, "--help").stdout


def test_benchmark_ellipses_json_rows(tmp_path):
    out = tmp_path / "ell.json"
    proc = run("benchmark", "ellipses", "--methods", "fbp", "--n", "6", "--json", str(out))
    (row,) = json.loads(out.read_text())["results"]
    assert row["method"] == "fbp" and row["dataset"] == "ellipses/test" and row["n"] == 6
    assert 20 < row["psnr"] < 30 and 0.4 < row["ssim"] < 0.8
    assert row["psnr_std"] > 0 and row["seconds_per_image"] > 0 and row["dival_psnr"] == 24.22
    assert "DIVal" in proc.stdout


@pytest.mark.parametrize("args,message", [
    (["benchmark", "ellipses", "--methods", "unet"], "unknown method 'unet'"),
    (["benchmark", "ellipses", "--n", "5000"], "--n must be in [1, 3200]"),
    (["data", "generate", "cats", "--out", "x.h5"], "unknown dataset 'cats'"),
    (["data", "generate", "ellipses", "--out", "x.h5", "--shift", "angles-7"], "unknown shift"),
])
def test_more_bad_input(args, message):
    proc = run(*args, check=False)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
