"""The HTML report (tomolearn.report) and the demo that writes it (tomolearn.studies.demo)."""

import json
import re

import numpy as np
import pytest
import torch

import tomolearn as tl
from tomolearn.report import find_chromium, format_table, render_png, write_report
from tomolearn.studies.demo import run_demo

torch.set_num_threads(1)


def _rows():
    return [
        {"method": "fbp", "dataset": "toy/test", "n": 2, "psnr": 20.5, "psnr_std": 1.0, "ssim": 0.61,
         "ssim_std": 0.02, "seconds_per_image": 0.004, "reference_psnr": 24.22, "reference_ssim": 0.598, "reference_source": "DIVal",
         "extra": "kept"},
        {"method": "tv", "dataset": "toy/test", "n": 2, "psnr": 25.0, "psnr_std": 0.5, "ssim": 0.8,
         "ssim_std": 0.01, "seconds_per_image": 0.5, "reference_psnr": None, "reference_ssim": None},
    ]


def _cases(rng, with_extras=True):
    cases = []
    for i in range(2):
        gt = rng.random((16, 16))
        case = {
            "name": f"toy #{i} <b>", "dataset": "toy/test", "ground_truth": gt,
            "sinogram": rng.random((6, 23)),
            "reconstructions": {"fbp": gt + 0.1 * rng.standard_normal(gt.shape),
                                "tv": torch.from_numpy(gt + 0.05 * rng.standard_normal(gt.shape))},
            "metrics": {"fbp": {"psnr": 20.0 + i, "ssim": 0.6}, "tv": {"psnr": 25.0, "ssim": 0.8}},
        }
        if with_extras and i == 0:
            case["maps"] = {"tv": {"uncertainty": rng.random((16, 16)),
                                   "interval_width": rng.random((16, 16))}}
            case["bounds"] = {"fbp": {"rmse_bound": 0.12, "flagged": True, "p_value": 0.003},
                              "tv": {"rmse_bound": 0.05, "flagged": False, "p_value": 0.4}}
        cases.append(case)
    return cases


META = {"command": "tomolearn demo --n-images 2", "versions": {"tomolearn": "0.1.0", "torch": "x"},
        "timings": {"simulation": 1.5}, "settings": {"angles": 6}}


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "rep"
    index = write_report(out, _cases(np.random.default_rng(0)), _rows(), META)
    assert index == out / "index.html"
    return out


def test_report_is_self_contained_html_with_embedded_figures(report_dir):
    page = (report_dir / "index.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("data:image/png;base64,") == 2  # one figure per case
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"""(src|href)\s*=\s*['"](?!data:|#)""", page)  # no file or URL references
    assert "<link" not in page and "<script" not in page
    assert "toy #0 &lt;b&gt;" in page and "toy #0 <b>" not in page  # escaped
    for text in ("PSNR", "SSIM", "DIVal PSNR", "24.22", "Timings", "Reproduce",
                 "tomolearn demo --n-images 2", "FLAGGED", "Versions"):
        assert text in page, text
    assert (report_dir / "index.html").stat().st_size < 2_000_000


def test_metrics_json_holds_the_rows(report_dir):
    doc = json.loads((report_dir / "metrics.json").read_text())
    assert doc["results"] == _rows()
    assert doc["meta"]["command"] == META["command"]
    assert [c["name"] for c in doc["cases"]] == ["toy #0 <b>", "toy #1 <b>"]
    assert doc["cases"][0]["bounds"]["fbp"]["flagged"] is True
    assert "fbp" in doc["table"] and "20.50" in doc["table"]
    assert sorted(p.name for p in report_dir.iterdir()) == ["index.html", "metrics.json"]


def test_refuses_a_non_empty_directory_and_overwrite_replaces(tmp_path):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "index.html").write_text("old report")
    (out / "notes.txt").write_text("mine")
    cases = _cases(np.random.default_rng(1), with_extras=False)[:1]
    with pytest.raises(FileExistsError, match=r"rep.*--overwrite"):
        write_report(out, cases, _rows(), META)
    assert (out / "index.html").read_text() == "old report"
    assert (out / "notes.txt").read_text() == "mine"
    assert not (out / "metrics.json").exists()
    write_report(out, cases, _rows(), META, overwrite=True)
    assert "data:image/png;base64," in (out / "index.html").read_text()
    assert json.loads((out / "metrics.json").read_text())["results"][0]["method"] == "fbp"
    assert (out / "notes.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    write_report(empty, cases, _rows(), META)  # an existing empty directory is fine


def test_bad_input_is_rejected_before_writing(tmp_path):
    rng = np.random.default_rng(2)
    bad_row = {k: v for k, v in _rows()[0].items() if k != "ssim_std"}
    with pytest.raises(ValueError, match="ssim_std"):
        write_report(tmp_path / "a", _cases(rng, False), [bad_row], META)
    case = _cases(rng, False)[0]
    case["reconstructions"]["fbp"] = np.zeros((8, 8))
    with pytest.raises(ValueError, match=r"shape \(16, 16\)"):
        write_report(tmp_path / "b", [case], _rows(), META)
    with pytest.raises(ValueError, match="PNG bytes"):
        write_report(tmp_path / "c", [], _rows(), META, figures=[("chart", b"GIF89a")])
    assert not any((tmp_path / d).exists() for d in "abc")


def test_a_study_report_with_figures_only(tmp_path):
    from tomolearn.studies import generalisation_figure

    rows = [dict(r, shift=s, psnr_delta=g, detection_auroc=a, coverage=0.9, interval_width=0.1,
                 rmse_bound=0.05, bound_coverage=0.9, flagged=0.1, alpha=0.1)
            for r, s, g, a in zip(_rows(), ("none", "noise-10%"), (0.0, -3.25), (None, 0.875))]
    png = generalisation_figure({"results": rows})
    page = write_report(tmp_path / "s", [], rows, META, figures=[("PSNR <per> shift", png)]).read_text()
    assert "<td>-3.25</td>" in page and "<td>0.88</td>" in page
    assert "<figcaption>PSNR &lt;per&gt; shift</figcaption>" in page
    assert "id='images'" not in page and "href='#figures'" in page
    assert page.count("src='data:image/png;base64,") == 1


def test_format_table_without_reference_columns():
    rows = [{k: v for k, v in r.items() if not k.startswith("reference")} for r in _rows()]
    table = format_table(rows)
    assert "DIVal" not in table and "25.00 ± 0.50" in table and "500.0 ms" in table


EIGHT_ANGLES = tl.task("ct").updated({"n_angles": 8})


@pytest.mark.slow
def test_run_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    result = run_demo(out, n_images=1, task=EIGHT_ANGLES, methods=("fbp",),
                      families=("ellipses", "rectangles"), seed=3, progress=False)
    rows = result["results"]
    assert [(r["method"], r["dataset"]) for r in rows] == [("fbp", "ellipses/test"),
                                                           ("fbp", "rectangles/test")]
    for r in rows:
        assert r["n"] == 1 and r["psnr_std"] == 0.0 and r["seconds_per_image"] > 0
        assert 8 < r["psnr"] < 40 and 0 < r["ssim"] < 1
        assert r["reference_psnr"] is None  # 8 angles is not DIVal's setting
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["results"] == rows and doc["table"] == result["table"]
    assert "fbp" in result["table"] and "rectangles/test" in result["table"]
    assert result["report"] == str(out / "index.html")
    page = (out / "index.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 2 and "run_demo" in page
    with pytest.raises(FileExistsError):
        run_demo(out, n_images=1, task=EIGHT_ANGLES, methods=("fbp",), families=("ellipses",),
                 progress=False)


def test_run_demo_rejects_unknown_method_before_work(tmp_path):
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        run_demo(tmp_path / "x", n_images=1, task=EIGHT_ANGLES, methods=("fbp", "nope"),
                 families=("ellipses",), progress=False)
    with pytest.raises(ValueError, match="unknown image family"):
        run_demo(tmp_path / "x", methods=("fbp",), families=("cats",), progress=False)
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
@pytest.mark.skipif(find_chromium() is None, reason="no Chromium installed")
def test_render_png(report_dir, tmp_path):
    from matplotlib.image import imread

    png = render_png(report_dir / "index.html", tmp_path / "shot.png", width=900)
    img = imread(png)
    assert img.shape[1] == 900 and img.shape[0] > 300
    assert float(img[..., :3].var()) > 0
    fixed = render_png(report_dir / "index.html", tmp_path / "fixed.png", width=640, height=480)
    assert imread(fixed).shape[:2] == (480, 640)


def test_render_png_without_chromium(report_dir, tmp_path, monkeypatch):
    import tomolearn.report as report

    monkeypatch.setattr(report, "find_chromium", lambda chromium=None: None)
    with pytest.raises(RuntimeError, match="no Chromium found"):
        report.render_png(report_dir / "index.html", tmp_path / "x.png")
