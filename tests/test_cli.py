"""The command line, driven as a user drives it (subprocess, one torch thread, tiny sizes)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tomolearn.weights import available

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SHIPPED = available()


def run(*args, check=True, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "tomolearn.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=600, env=ENV, cwd=cwd)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def assert_one_line_error(proc, message=None):
    """Exit status 2, one line on stderr naming the verb, no traceback."""
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tomolearn"), proc.stderr
    if message:
        assert message in proc.stderr, proc.stderr


def ellipses_sinogram(index=0):
    """Test sample ``index`` of the standard benchmark: y (1, 30, 183), x (1, 128, 128) numpy."""
    from tomolearn.data import ellipses_benchmark

    y, x = ellipses_benchmark("test", size=index + 1)[index]
    return y.numpy(), x.numpy()


@pytest.mark.slow
def test_info_reports_versions_devices_threads_and_backends(tmp_path):
    out = tmp_path / "info.json"
    proc = run("info", "--json", str(out))
    assert "torch" in proc.stdout and "threads" in proc.stdout
    info = json.loads(out.read_text())
    assert info["devices"][0] == "cpu"
    assert info["operator_backends"]["ellipses"]["backend"] == "sparse"
    assert info["operator_backends"]["lodopab"]["stored_angles"] == 500
    assert info["torch_threads"] >= 1


@pytest.mark.slow
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


@pytest.mark.slow
def test_benchmark_ellipses_json_rows(tmp_path):
    out = tmp_path / "ell.json"
    proc = run("benchmark", "ellipses", "--methods", "fbp", "--n", "6", "--json", str(out))
    (row,) = json.loads(out.read_text())["results"]
    assert row["method"] == "fbp" and row["dataset"] == "ellipses/test" and row["n"] == 6
    assert 20 < row["psnr"] < 30 and 0.4 < row["ssim"] < 0.8
    assert row["psnr_std"] > 0 and row["seconds_per_image"] > 0 and row["reference_psnr"] == 24.22
    assert "DIVal" in proc.stdout


@pytest.mark.slow
def test_benchmark_learned_json_rows(tmp_path):
    out = tmp_path / "speed.json"
    proc = run("benchmark", "learned", "--methods", "lgd", "--batches", "2", "--repeats", "1",
               "--json", str(out))
    (row,) = json.loads(out.read_text())["results"]
    assert row["method"] == "lgd" and row["batch"] == 2 and row["n_parameters"] > 0
    for key in ("fp32_nchw_ms", "fp32_channels_last_ms", "bf16_nchw_ms", "bf16_channels_last_ms",
                "train_samples_per_s"):
        assert row[key] > 0, key
    assert 0 < row["operator_share"] < 1
    assert "operator" in proc.stdout and "lgd" in proc.stdout



def main_in_process(args, capsys):
    """Run ``tomolearn.cli.main(args)`` here (no interpreter start-up): (status, stdout, stderr)."""
    from tomolearn.cli import main

    try:
        status = main([str(a) for a in args])
    except SystemExit as e:  # argparse: --help, usage errors
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.slow
def test_help_of_every_verb_has_examples(capsys):
    assert "examples:" in run("--help").stdout
    for verb in (["info"], ["demo"], ["data", "generate"], ["train"], ["reconstruct"],
                 ["evaluate"], ["benchmark"]):
        status, out, _ = main_in_process([*verb, "--help"], capsys)
        assert status == 0 and "examples:" in out, verb


# -- demo ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_demo_writes_report_with_bounds_and_refuses_a_non_empty_folder(tmp_path):
    out, js = tmp_path / "report", tmp_path / "demo.json"
    proc = run("demo", "--out", out, "--n-images", "1", "--methods", "fbp,tv",
               "--families", "ellipses,shepp-logan", "--calibration-n", "19", "--seed", "3",
               "--json", js)
    assert (out / "index.html").is_file() and "PSNR" in proc.stdout and "RMSE bound" in proc.stdout
    doc = json.loads((out / "metrics.json").read_text())
    assert json.loads(js.read_text())["results"] == doc["results"]
    rows = {(r["method"], r["dataset"]): r for r in doc["results"]}
    assert list(rows) == [("fbp", "ellipses/test"), ("tv", "ellipses/test"),
                          ("fbp", "shepp-logan/test"), ("tv", "shepp-logan/test")]
    for r in doc["results"]:
        assert r["n"] == 1 and 15 < r["psnr"] < 40 and 0.3 < r["ssim"] < 1
        assert r["seconds_per_image"] > 0
        if r["method"] == "fbp":
            assert r["alpha"] == 0.1 and r["calibration_n"] == 19
            assert 0.5 < r["coverage"] <= 1 and r["rmse_bound"] > 0
            assert r["bound_coverage"] in (0.0, 1.0) and r["flagged"] in (0.0, 1.0)
        else:  # TV is not calibrated in the demo, and says why
            assert r["alpha"] is None and r["coverage"] is None and "slow" in r["bounds_note"]
    assert rows[("fbp", "ellipses/test")]["reference_psnr"] == 24.22
    case = doc["cases"][0]
    assert set(case["bounds"]) == {"fbp"}
    b = case["bounds"]["fbp"]
    assert 0 < b["p_value"] <= 1 and isinstance(b["flagged"], bool) and b["rmse_bound"] > 0
    assert doc["meta"]["command"].startswith("tomolearn demo --out ")
    assert doc["meta"]["bounds"]["calibration"]["dataset"] == "ellipses/validation"
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "Error bounds and flagged images" in page and "too slow to calibrate" in page
    assert page.count("data:image/png;base64,") == 2

    again = run("demo", "--out", out, "--n-images", "1", "--methods", "fbp", check=False)
    assert_one_line_error(again, "not empty; pass --overwrite")


@pytest.mark.slow
def test_demo_flags_data_unlike_the_calibration(tmp_path):
    """Bounds are calibrated under the standard spec: 10 angles are out of distribution."""
    out = tmp_path / "r"
    run("demo", "--out", out, "--n-images", "2", "--angles", "10", "--methods", "fbp",
        "--families", "ellipses", "--calibration-n", "19", "--quiet")
    (row,) = json.loads((out / "metrics.json").read_text())["results"]
    assert row["task_spec"]["n_angles"] == 10 and row["task"] == "ct"
    assert row["flagged"] == 1.0 and row["reference_psnr"] is None


@pytest.mark.slow
def test_demo_without_bounds(tmp_path):
    out = tmp_path / "r"
    run("demo", "--out", out, "--n-images", "1", "--methods", "fbp", "--families", "rectangles",
        "--no-bounds", "--quiet")
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["results"][0]["coverage"] is None and doc["cases"][0]["bounds"] == {}
    assert "Error bounds and flagged images" not in (out / "index.html").read_text(encoding="utf-8")


# -- reconstruct --------------------------------------------------------------------------------
@pytest.mark.slow
def test_reconstruct_npy_sinogram_matches_the_library(tmp_path):
    import torch

    import tomolearn as tl
    from tomolearn.registry import build_method

    y, _ = ellipses_sinogram()
    np.save(tmp_path / "sino.npy", y)  # (1, 30, 183)
    proc = run("reconstruct", "--input", tmp_path / "sino.npy", "--method", "fbp",
               "--out", tmp_path / "rec.npy")
    assert "fbp: 128x128 image from 30 angles x 183 detectors" in proc.stdout
    rec = np.load(tmp_path / "rec.npy")
    expected = build_method("fbp", tl.task("ct"))(torch.from_numpy(y)[None])
    assert rec.shape == (128, 128) and rec.dtype == np.float32
    np.testing.assert_allclose(rec, expected[0, 0].numpy(), atol=1e-5)
    from PIL import Image
    png = Image.open(tmp_path / "rec.png")
    assert png.mode == "L" and png.size == (128, 128)
    again = run("reconstruct", "--input", tmp_path / "sino.npy", "--method", "fbp",
                "--out", tmp_path / "rec.npy", check=False)
    assert_one_line_error(again, "file exists (pass --overwrite")
    run("reconstruct", "--input", tmp_path / "sino.npy", "--method", "fbp",
        "--out", tmp_path / "rec.npy", "--overwrite")


@pytest.mark.slow
def test_reconstruct_npz_and_hdf5_report_psnr_against_their_ground_truth(tmp_path):
    y, x = ellipses_sinogram()
    np.savez(tmp_path / "s.npz", sinogram=y[0], ground_truth=x[0])
    proc = run("reconstruct", "--input", tmp_path / "s.npz", "--method", "fbp",
               "--out", tmp_path / "a.npy")
    assert "PSNR" in proc.stdout
    run("data", "generate", "ellipses", "--split", "test", "--n", "2", "--out", tmp_path / "t.h5",
        "--quiet")
    proc = run("reconstruct", "--input", tmp_path / "t.h5", "--index", "1", "--method", "fbp",
               "--out", tmp_path / "b.npy")
    assert "sample 1 of 2" in proc.stdout and "PSNR" in proc.stdout


@pytest.mark.slow
def test_reconstruct_from_a_png_image(tmp_path):
    from matplotlib.image import imsave
    from PIL import Image

    from tomolearn import phantoms

    imsave(tmp_path / "phantom.png", phantoms.shepp_logan(200).numpy(), cmap="gray")  # RGBA
    proc = run("reconstruct", "--input", tmp_path / "phantom.png", "--method", "fbp",
               "--image-size", "96", "--angles", "40", "--noise", "0.01", "--seed", "2",
               "--out", tmp_path / "out" / "rec.npy", "--parents")  # out/ is created
    psnr = float(proc.stdout.split("PSNR ")[1].split(" dB")[0])
    assert 18 < psnr < 40 and "from 40 angles" in proc.stdout
    assert np.load(tmp_path / "out" / "rec.npy").shape == (96, 96)
    assert Image.open(tmp_path / "out" / "rec.png").mode == "L"
    assert not (tmp_path / "out" / "rec.dcm").exists()


@pytest.mark.slow
def test_reconstruct_from_dicom_writes_a_derived_dicom(tmp_path):
    import pydicom
    from pydicom.data import get_testdata_file

    src = pydicom.dcmread(get_testdata_file("CT_small.dcm"))  # 128 x 128 CT, HU via rescale
    src.save_as(tmp_path / "slice")  # no suffix: detected by content
    proc = run("reconstruct", "--input", tmp_path / "slice", "--method", "fbp", "--image-size",
               "64", "--out", tmp_path / "rec.npy")
    assert "CT DICOM" in proc.stdout and "rec.dcm" in proc.stdout
    out = pydicom.dcmread(tmp_path / "rec.dcm")
    assert out.SOPInstanceUID != src.SOPInstanceUID
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert out.SeriesInstanceUID != src.SeriesInstanceUID
    assert out.StudyInstanceUID == src.StudyInstanceUID and out.PatientID == src.PatientID
    assert "DERIVED" in list(out.ImageType) and "tomolearn" in out.DerivationDescription
    assert "fbp" in out.DerivationDescription
    assert out.pixel_array.shape == (64, 64) and (out.Rows, out.Columns) == (64, 64)
    assert float(out.PixelSpacing[0]) == pytest.approx(2 * float(src.PixelSpacing[0]), rel=1e-4)
    # pixel values in HU, close to the input's (2 x 2 block means: the 64 x 64 ground truth)
    hu = out.pixel_array * float(out.RescaleSlope) + float(out.RescaleIntercept)
    hu_in = src.pixel_array * float(src.RescaleSlope) + float(src.RescaleIntercept)
    hu_in = hu_in.reshape(64, 2, 64, 2).mean(axis=(1, 3))
    assert np.corrcoef(hu.ravel(), hu_in.ravel())[0, 1] > 0.9
    assert abs(np.median(hu - hu_in)) < 50
    # the .npy holds linear attenuation (1/m), as tomolearn.data.read_dicom returns it
    from tomolearn.data import hu_to_mu
    mu = np.load(tmp_path / "rec.npy")
    inside = hu > -900
    np.testing.assert_allclose(hu_to_mu(hu)[inside], mu[inside], rtol=0.01, atol=0.05)


@pytest.mark.slow
def test_reconstruct_with_a_learned_method_and_a_geometry_it_cannot_handle(tmp_path):
    y, _ = ellipses_sinogram()
    np.save(tmp_path / "sino.npy", y[0])
    proc = run("reconstruct", "--input", tmp_path / "sino.npy", "--method", "fbpconvnet",
               "--out", tmp_path / "rec.npy")
    assert np.load(tmp_path / "rec.npy").shape == (128, 128) and "fbpconvnet" in proc.stdout
    proc = run("reconstruct", "--input", tmp_path / "sino.npy", "--method", "fbpconvnet",
               "--image-size", "64", "--out", tmp_path / "small.npy", check=False)
    assert_one_line_error(proc, "image shape (128, 128)")
    assert not (tmp_path / "small.npy").exists()


@pytest.mark.slow
def test_reconstruct_with_lpd(tmp_path):
    y, x = ellipses_sinogram()
    np.savez(tmp_path / "s.npz", sinogram=y, ground_truth=x)
    proc = run("reconstruct", "--input", tmp_path / "s.npz", "--method", "lpd",
               "--out", tmp_path / "rec.npy")
    assert float(proc.stdout.split("PSNR ")[1].split(" dB")[0]) > 27


def test_learned_method_without_weights_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    import tomolearn.weights

    monkeypatch.setattr(tomolearn.weights, "SHIPPED", tmp_path / "no-weights")  # as if not installed
    y, _ = ellipses_sinogram()
    np.save(tmp_path / "sino.npy", y)
    status, _, err = main_in_process(["reconstruct", "--input", str(tmp_path / "sino.npy"),
                                      "--method", "lpd", "--out", str(tmp_path / "rec.npy")], capsys)
    assert status == 2 and "'lpd-ellipses', which are not installed" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "rec.npy").exists()
    status, _, err = main_in_process(["evaluate", "--model", "lpd-ellipses"], capsys)
    assert status == 2 and "not installed" in err


# -- evaluate -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_evaluate_under_a_shift_writes_rows_with_shift_alpha_coverage(tmp_path):
    js, md, plot = tmp_path / "e.json", tmp_path / "e.md", tmp_path / "e.png"
    proc = run("evaluate", "--methods", "fbp", "--shift", "noise-10%", "--n", "4",
               "--calibration-n", "9", "--alpha", "0.2", "--json", js, "--markdown", md,
               "--plot", plot, "--report", tmp_path / "study")
    doc = json.loads(js.read_text())
    rows = doc["results"]
    assert [(r["method"], r["shift"], r["dataset"]) for r in rows] == [
        ("fbp", "none", "ellipses/test"), ("fbp", "noise-10%", "ellipses-noise-10%/test")]
    for r in rows:
        for key in ("n", "psnr", "psnr_std", "ssim", "ssim_std", "seconds_per_image"):
            assert r[key] is not None, key
        assert r["n"] == 4 and r["alpha"] == 0.2 and 0 <= r["coverage"] <= 1
    assert rows[0]["psnr"] > rows[1]["psnr"]
    assert doc["calibration"]["n"] == 9
    assert "| fbp | noise-10% |" in proc.stdout and md.read_text() in proc.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (tmp_path / "study" / "index.html").read_text()
    assert "<th>ΔPSNR (dB)</th>" in page and "<th>shift AUROC</th>" in page
    assert "<figcaption>PSNR per shift and method</figcaption>" in page
    assert "ellipses-noise-10%/test" in page and "id='images'" not in page
    assert f"<td>{rows[1]['psnr_delta']:+.2f}</td>" in page
    assert f"<td>{rows[1]['detection_auroc']:.2f}</td>" in page
    saved = json.loads((tmp_path / "study" / "metrics.json").read_text())["results"]
    assert [r["psnr"] for r in saved] == [r["psnr"] for r in rows]


@pytest.mark.slow
def test_evaluate_refuses_a_non_empty_report_directory_before_any_work(tmp_path):
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "keep.txt").write_text("user data")
    proc = run("evaluate", "--methods", "fbp", "--n", "2", "--calibration-n", "4", "--alpha",
               "0.25", "--report", tmp_path / "study", check=False)
    assert proc.returncode == 2 and "--report" in proc.stderr and "--overwrite" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in (tmp_path / "study").iterdir()) == ["keep.txt"]


@pytest.mark.slow
def test_evaluate_in_distribution_only_by_default(tmp_path):
    js = tmp_path / "e.json"
    run("evaluate", "--methods", "fbp", "--n", "2", "--calibration-n", "4", "--alpha", "0.25",
        "--json", js, "--quiet")
    (row,) = json.loads(js.read_text())["results"]
    assert row["shift"] == "none" and row["dataset"] == "ellipses/test"


@pytest.mark.slow
def test_evaluate_a_shipped_model_under_a_geometry_shift(tmp_path):
    js = tmp_path / "e.json"
    run("evaluate", "--model", "lpd-ellipses", "--shift", "angles-20", "--n", "2",
        "--calibration-n", "4", "--alpha", "0.25", "--json", js, "--quiet")
    rows = json.loads(js.read_text())["results"]
    assert [(r["method"], r["shift"]) for r in rows] == [("lpd", "none"), ("lpd", "angles-20")]



@pytest.mark.slow
def test_evaluate_the_shipped_ensemble_calibrates_on_its_spread(tmp_path):
    js = tmp_path / "e.json"
    proc = run("evaluate", "--model", "lpd-ensemble", "--shift", "noise-10%", "--n", "3",
               "--calibration-n", "4", "--alpha", "0.25", "--json", js, "--quiet")
    doc = json.loads(js.read_text())
    assert doc["calibration"]["methods"]["lpd-ensemble"]["scale"] == "own"
    for r in doc["results"]:
        assert r["method"] == "lpd-ensemble" and r["scale"] == "own"
        assert -1 <= r["uncertainty_error_correlation"] <= 1
        assert -1 <= r["uncertainty_rmse_spearman"] <= 1
    assert "| lpd-ensemble | noise-10% |" in proc.stdout

# -- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize("args,message", [
    (["benchmark", "operators", "--geometries", "nope"], "unknown geometry 'nope'"),
    (["benchmark", "operators", "--batches", "0"], "--batches must be positive"),
    (["benchmark", "operators", "--device", "cuda:7"], None),
    (["benchmark", "ellipses", "--methods", "unet"], "unknown method 'unet'"),
    (["benchmark", "ellipses", "--n", "5000"], "--n must be in [1, 3200]"),
    (["benchmark", "learned", "--methods", "tv"], "unknown network 'tv'"),
    (["benchmark", "learned", "--batches", "1,16"], "one positive batch size"),
    (["data", "generate", "cats", "--out", "x.h5"], "unknown dataset 'cats'"),
    (["data", "generate", "ellipses", "--out", "x.h5", "--shift", "angles-7"], "unknown shift"),
    (["info", "--json", "/"], "is a directory"),
    (["demo", "--n-images", "0"], "--n-images must be at least 1"),
    (["demo", "--noise", "-0.1"], "--noise must be"),
    (["demo", "--methods", "fbp,unet", "--out", "{tmp}/d"], "unknown method 'unet'"),
    (["demo", "--families", "cats", "--out", "{tmp}/d"], "unknown image family 'cats'"),
    (["demo", "--calibration-n", "5", "--out", "{tmp}/d"], "too small for --alpha 0.1"),
    (["demo", "--device", "cuda:7", "--methods", "fbp", "--out", "{tmp}/d"], "cuda:7"),
    (["demo", "--n-images", "many"], "invalid int value"),
    (["reconstruct", "--input", "{tmp}/missing.npy", "--method", "fbp", "--out", "{tmp}/r.npy"],
     "no such file"),
    (["reconstruct", "--input", "{tmp}/sino.npy", "--method", "unet", "--out", "{tmp}/r.npy"],
     "unknown method 'unet'"),
    (["reconstruct", "--input", "{tmp}/sino.npy", "--method", "fbp", "--out", "{tmp}/r.txt"],
     "expected a .npy file name"),
    (["reconstruct", "--input", "{tmp}/sino.npy", "--method", "fbp", "--angles", "60",
      "--out", "{tmp}/r.npy"], "--angles 60 does not match the sinogram"),
    (["reconstruct", "--input", "{tmp}/stack.npy", "--method", "fbp", "--out", "{tmp}/r.npy"],
     "expected a 2-D array (A, D) or (1, A, D), got shape (2, 30, 183)"),
    (["reconstruct", "--input", "{tmp}/sino.npy", "--method", "fbp", "--noise", "0.1",
      "--out", "{tmp}/r.npy"], "apply only when the input is an image"),
    (["reconstruct", "--input", "{tmp}/fake.dcm", "--method", "fbp", "--out", "{tmp}/r.npy"],
     "not a DICOM file"),
    (["reconstruct", "--input", "{tmp}", "--method", "fbp", "--out", "{tmp}/r.npy"],
     "is a directory"),
    (["reconstruct", "--method", "fbp", "--out", "{tmp}/r.npy"], "--input"),
    (["evaluate", "--methods", "fbp", "--shift", "angles-7"], "unknown shift 'angles-7'"),
    (["evaluate", "--methods", "fbp", "--dataset", "lodopab"], "unknown dataset 'lodopab'"),
    (["evaluate", "--model", "unet-ellipses"], "unknown model 'unet-ellipses'"),
    (["evaluate", "--methods", "unet"], "unknown method 'unet'"),
    (["evaluate", "--methods", "fbp", "--calibration-n", "5"], "too small for --alpha 0.1"),
    (["evaluate", "--methods", "fbp", "--plot", "{tmp}/p.jpg"], "expected a .png file name"),
    (["evaluate"], "one of the arguments --model --methods is required"),
])
def test_bad_input_gives_one_line_and_status_2(tmp_path, monkeypatch, capsys, args, message):
    """In process (each case fails before any work; start-up would dominate): status 2, one line."""
    np.save(tmp_path / "sino.npy", np.ones((30, 183), np.float32))
    np.save(tmp_path / "stack.npy", np.ones((2, 30, 183), np.float32))
    (tmp_path / "fake.dcm").write_bytes(b"not a dicom file")
    monkeypatch.chdir(tmp_path)
    status, _, err = main_in_process([a.replace("{tmp}", str(tmp_path)) for a in args], capsys)
    assert status == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tomolearn"), err
    if message:
        assert message in err, err
    assert not (tmp_path / "d").exists() and not (tmp_path / "r.npy").exists()


@pytest.mark.parametrize("args,message", [
    (["demo", "--noise", "-0.1"], "--noise must be"),
    (["reconstruct", "--input", "{tmp}/sino.npy", "--method", "fbp", "--angles", "60",
      "--out", "{tmp}/r.npy"], "--angles 60 does not match the sinogram"),
    (["evaluate", "--methods", "fbp", "--shift", "angles-7"], "unknown shift 'angles-7'"),
    (["evaluate"], "one of the arguments --model --methods is required"),
])
@pytest.mark.slow
def test_bad_input_from_a_real_process(tmp_path, args, message):
    np.save(tmp_path / "sino.npy", np.ones((30, 183), np.float32))
    proc = run(*[a.replace("{tmp}", str(tmp_path)) for a in args], check=False, cwd=tmp_path)
    assert_one_line_error(proc, message)
