"""The generalisation study (tomolearn.studies): quality, bounds and shift detection per shift,
on the CT task and on any registered task."""

import json
import math

import pytest

import tomolearn as tl
from tomolearn import studies

# -- the report, end to end -----------------------------------------------------------------------
def fbp_factory(op):
    return lambda y: tl.ct.fbp(op, y)


def test_generalisation_report_end_to_end(tmp_path):
    calls = []
    rep = studies.generalisation_report({"fbp": fbp_factory}, ["none", "shepp-logan", "noise-10%"],
                                   n=4, calibration_n=8, alpha=0.25,
                                   progress=lambda d, t: calls.append((d, t)))
    json.dumps(rep, allow_nan=False)
    assert calls[-1] == (8 + 3 * 4, 8 + 3 * 4)
    rows = {r["shift"]: r for r in rep["results"]}
    assert list(rows) == ["none", "shepp-logan", "noise-10%"]
    keys = {"method", "dataset", "shift", "n", "psnr", "psnr_std", "ssim", "ssim_std",
            "seconds_per_image", "psnr_delta", "ssim_delta", "alpha", "coverage", "interval_width",
            "rmse_bound", "bound_coverage", "detection_auroc", "flagged"}
    for r in rows.values():
        assert keys <= set(r), keys - set(r)
        assert r["method"] == "fbp" and r["n"] == 4 and r["alpha"] == 0.25
        assert 0 <= r["coverage"] <= 1 and 0 <= r["bound_coverage"] <= 1 and 0 <= r["flagged"] <= 1
        assert math.isfinite(r["interval_width"]) and r["interval_width"] > 0
        assert r["psnr_delta"] == pytest.approx(r["psnr"] - rows["none"]["psnr"])
    assert rows["shepp-logan"]["dataset"] == "shepp-logan/test"
    assert rows["none"]["dataset"] == "ellipses/test"
    assert rows["none"]["psnr_delta"] == 0 and rows["none"]["detection_auroc"] is None
    assert rows["noise-10%"]["psnr"] < rows["none"]["psnr"]
    assert rows["noise-10%"]["detection_auroc"] > 0.5
    cal = rep["calibration"]["methods"]["fbp"]
    assert math.isfinite(cal["lambda"]) and cal["rmse_bound"] == rows["none"]["rmse_bound"]
    table = studies.format_markdown(rep)
    assert table.count("\n| fbp |") == 3
    png = tmp_path / "gen.png"
    studies.plot_generalisation(rep, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["gen.png"]  # no temporary left behind



def test_generalisation_report_uses_a_methods_own_scale_and_measures_its_correlation():
    """An 'oracle' method whose scale is its true error must show correlation 1; the residual
    scale of FBP gets a correlation and no image-level Spearman."""
    from tomolearn.ct import SimulationSpec
    from tomolearn.data import SimulatedDataset

    truth = {}  # the report's calibration and test batches, found again by their data
    for split, size in (("validation", 8), ("test", 4)):
        y, x = SimulatedDataset("ellipses", split, SimulationSpec(), size=size).batch(range(size))
        truth[y.numpy().tobytes()] = x

    def oracle_factory(op):
        def recon(y):
            x_fbp = tl.ct.fbp(op, y)
            return x_fbp, (truth[y.numpy().tobytes()] - x_fbp).abs() + 1e-3
        return recon

    rep = studies.generalisation_report({"oracle": oracle_factory, "fbp": fbp_factory}, ["none"],
                                   n=4, calibration_n=8, alpha=0.25, batch_size=8)
    json.dumps(rep, allow_nan=False)
    oracle, fbp = rep["results"]
    assert oracle["scale"] == "own" and rep["calibration"]["methods"]["oracle"]["scale"] == "own"
    assert oracle["uncertainty_error_correlation"] == pytest.approx(1.0, abs=1e-6)
    assert oracle["uncertainty_rmse_spearman"] is not None
    assert fbp["scale"] == "residual" and fbp["uncertainty_rmse_spearman"] is None
    assert -1 <= fbp["uncertainty_error_correlation"] <= 1
    assert oracle["coverage"] >= 0.75  # the oracle scale is a valid (and perfect) heuristic
    assert "| oracle | none |" in studies.format_markdown(rep)

def test_generalisation_report_adds_none_and_reports_infinite_bounds_as_null():
    with pytest.warns(RuntimeWarning, match="infinite"):
        rep = studies.generalisation_report({"fbp": fbp_factory}, ["angles-20"], n=2,
                                       calibration_n=4, alpha=0.1)
    json.dumps(rep, allow_nan=False)
    assert [r["shift"] for r in rep["results"]] == ["none", "angles-20"]
    for r in rep["results"]:
        assert r["rmse_bound"] is None and r["interval_width"] is None
        assert r["coverage"] == 1.0 and r["bound_coverage"] == 1.0 and r["flagged"] == 0.0


def test_unknown_shift_is_named():
    with pytest.raises(ValueError, match="unknown shift 'no-such-shift'.*measurement shift of task 'ct'"):
        studies.generalisation_report({"fbp": lambda op: None}, ["no-such-shift"], n=2,
                                      calibration_n=2)


@pytest.mark.slow
def test_the_study_runs_registered_methods_on_another_task():
    rep = studies.generalisation_report(["tv"], ["more-blur", "shepp-logan"], n=12,
                                        calibration_n=20, alpha=0.2, task="toy-deblur")
    rows = {r["shift"]: r for r in rep["results"]}
    assert set(rows) == {"none", "more-blur", "shepp-logan"} and rep["task"]["task"] == "toy-deblur"
    assert all(r["task"] == "toy-deblur" and math.isfinite(r["psnr"]) for r in rows.values())
    assert rows["more-blur"]["psnr_delta"] < 0  # more blur is harder
    assert rows["none"]["bound_coverage"] >= 0.5 and rows["none"]["rmse_bound"] is not None
    assert "more-blur" in studies.shift_names("toy-deblur")
