"""``tomolearn benchmark pet``: rows with the counts, the training family and the NEMA phantom,
NEMA figures of merit per sphere (the general Task.figures_of_merit seam), and the bias-noise
curves (OSEM over iterations, MAP over beta) of the demo's extra figure.  Tiny task: seconds."""

import json
import math

import pytest
import torch

import tomolearn as tl
from tomolearn.cli import main
from tomolearn.modalities import pet
from tomolearn.studies import benchmark, format_figures_table
from tomolearn.studies.bias_noise import bias_noise_figure, demo_figures, figure_sweeps
from tomolearn.studies.quality import mean_figures

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--task-set", "image_size=32", "--task-set", "view_mash=8", "--task-set", "bin_mash=8"]
SPHERES = ["10", "13", "17", "22", "28", "37"]


def test_benchmark_pet_reports_both_families_two_count_levels_and_nema_figures(tmp_path, capsys):
    out = tmp_path / "pet.json"
    assert main(["benchmark", "pet", *TINY, "--n", "2", "--methods", "osem,rdp-map",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    rows = json.loads(out.read_text())["results"]
    assert [(r["dataset"], r["counts"], r["method"]) for r in rows] == [
        (f"{f}/test", c, m) for f in ("pet-torso", "nema-iq") for c in (1e6, 1e5)
        for m in ("osem", "rdp-map")]
    for r in rows:
        assert {"task", "method", "counts", "psnr", "ssim", "seconds_per_image"} <= set(r)
        assert r["task"] == "pet" and r["n"] == 2
        nema = r["dataset"] == "nema-iq/test"
        assert r["body"] == ("nema" if nema else "torso")  # each family in its own body
        assert ("crc" in r) == nema and ("background_variability" in r) == nema
        if nema:
            assert list(r["crc"]) == SPHERES and list(r["background_variability"]) == SPHERES
            assert all(math.isfinite(v) for v in r["crc"].values())
            assert all(0 < v < 1 for v in r["background_variability"].values())
            assert r["figures_of_merit"] == ["crc", "background_variability", "lung_residual"]
    # MAP smooths: lower background variability than OSEM at both count levels
    nema = {(r["counts"], r["method"]): r for r in rows if r["dataset"] == "nema-iq/test"}
    for c in (1e6, 1e5):
        assert nema[c, "rdp-map"]["background_variability"]["37"] < \
            nema[c, "osem"]["background_variability"]["37"]
    # fewer counts, noisier OSEM
    assert nema[1e5, "osem"]["background_variability"]["10"] > \
        nema[1e6, "osem"]["background_variability"]["10"]
    assert text.count("figures of merit (nema-iq)") == 2 and "crc" in text
    assert "body nema), nema-iq test split" in text and "body torso), pet-torso" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("osem ") and ln.count(".") > 6)
    assert len(line.split()) == 1 + 13  # method, 6 CRC, 6 variability, lung residual


def test_an_explicit_family_is_the_only_one(tmp_path, capsys):
    out = tmp_path / "pet.json"
    assert main(["benchmark", "pet", *TINY, "--n", "1", "--methods", "osem", "--family",
                 "pet-torso", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert {r["dataset"] for r in rows} == {"pet-torso/test"} and len(rows) == 2
    assert not any("crc" in r for r in rows)
    assert "figures of merit" not in capsys.readouterr().out


def test_figures_of_merit_seam_is_optional_and_general():
    ct = tl.task("ct").tiny()
    assert ct.figures_of_merit("ellipses", None, None) is None and ct.for_family("x") is ct
    rows = benchmark(["fbp"], n=1, task=ct, family="ellipses")
    assert "figures_of_merit" not in rows[0] and "crc" not in rows[0]
    assert format_figures_table(rows, []) == ""
    t = pet.PETTask.tiny()
    assert t.for_family("nema-iq").body == "nema" and t.for_family("ellipses") is t
    assert t.figures_of_merit("pet-torso", torch.zeros(1, 1, 32, 32), None) is None
    means = mean_figures([{"a": 1.0, "b": {"x": 2.0}}, {"a": 3.0, "b": {"x": 4.0}}])
    assert means == {"figures_of_merit": ["a", "b"], "a": 2.0, "b": {"x": 3.0}}
    assert mean_figures([]) == {}


def test_nema_figures_of_the_truth_are_nemas_of_each_image():
    t = pet.PETTask(image_size=128).for_family("nema-iq")
    x = pet.nema_iq(None, 128).reshape(1, 1, 128, 128)
    f = t.figures_of_merit("nema-iq", torch.cat([x, 0.5 * x]), x)
    assert len(f) == 2 and f[0]["crc"] == pytest.approx(f[1]["crc"])  # scale-free, per image
    f = f[0]
    direct = pet.nema_figures(x[0, 0])["crc"]
    assert f["crc"] == pytest.approx({f"{d:g}": v for d, v in direct.items()})
    assert 0.9 < f["crc"]["37"] < 1.0  # only the partial-volume rim of 3.125 mm voxels
    assert f["crc"]["37"] > f["crc"]["10"] > 0.5
    assert max(f["background_variability"].values()) < 1e-6


@pytest.fixture(scope="module")
def curves():
    """64 x 64 voxels of 6.25 mm, 42 views (21 subsets of 2): about 6 s."""
    torch.set_num_threads(1)
    return figure_sweeps(pet.PETTask(image_size=64, view_mash=4, bin_mash=4), n=1,
                         methods=["osem-filtered"])


def test_bias_noise_curves_follow_iterations_and_beta(curves):
    osem = {r["value"]: r for r in curves if r["method"] == "osem"}
    mapr = {r["value"]: r for r in curves if r["method"] == "rdp-map"}
    assert list(osem) == [1, 2, 3, 4, 6, 8, 10] and list(mapr) == [0.3, 1.0, 2.0, 5.0, 20.0]
    assert all(r["family"] == "nema-iq" and r["n"] == 1 for r in curves)
    # more OSEM iterations: more contrast on the smallest sphere, and more noise
    assert osem[10]["crc"]["10"] > osem[2]["crc"]["10"] + 0.05
    assert osem[10]["background_variability"]["10"] > 1.5 * osem[2]["background_variability"]["10"]
    # a stronger prior: less contrast on small spheres, and less noise than converged OSEM
    assert mapr[0.3]["crc"]["10"] > mapr[5.0]["crc"]["10"] + 0.1
    noise = {k: r["background_variability"]["10"] for k, r in mapr.items()}
    assert noise[2.0] < 0.5 * osem[10]["background_variability"]["10"]
    point = [r for r in curves if r["parameter"] is None]
    assert [r["label"] for r in point] == ["osem-filtered"] and point[0]["value"] is None


def test_bias_noise_figure_and_demo_figures(curves):
    png = bias_noise_figure(curves)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    with pytest.raises(ValueError, match="no rows with 'crc'"):
        bias_noise_figure([{"label": "x"}])
    assert demo_figures(tl.task("ct").tiny(), ["fbp"]) == ([], [])
    with pytest.raises(ValueError, match="declares no figure sweeps"):
        figure_sweeps(tl.task("ct").tiny())
