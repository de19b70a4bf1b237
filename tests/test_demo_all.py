"""``tomolearn demo --task all``: every task's demo in one report, a section per task
(tomolearn.studies.demo_all.run_demo_all, tomolearn.report.write_report_sections, the CLI).
Tiny tasks, one image per family, one method per task: seconds."""

import json
import re

import numpy as np
import pytest
import torch

import tomolearn as tl
import tomolearn.cli.demo as cli_demo
import tomolearn.studies.demo_all as demo_all
from tomolearn.cli import main
from tomolearn.report import write_report_sections
from tomolearn.studies import run_demo_all

pytestmark = pytest.mark.usefixtures("one_thread")

#: Tiny sections: CT on 24 x 24 (6 angles) and MRI on 24 x 24 (4 coils), one method each.
TINY = {"tasks": [tl.task("ct").tiny(), tl.task("mri").tiny()],
        "methods": {"ct": ["fbp"], "mri": ["zero-filled"]},
        "families": {"ct": ["ellipses", "rectangles"], "mri": ["brain"]}}


def _ids(page: str) -> list:
    return re.findall(r"\sid='([^']*)'", page)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Both tiny sections with bounds (each calibrated on 9 images of its own task)."""
    out = tmp_path_factory.mktemp("all") / "report"
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = run_demo_all(out, n_images=1, calibration_n=9, alpha=0.2, progress=False, **TINY)
    finally:
        torch.set_num_threads(n)
    return out, result


def test_one_page_with_a_section_per_task_and_unique_anchors(report):
    out, result = report
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "metrics.json"]
    page = (out / "index.html").read_text(encoding="utf-8")
    assert page.count("<h1>") == 1 and page.count("id='reproduce'") == 1
    assert "<h2 id='ct'>tomolearn demo: ct</h2>" in page
    assert "<h2 id='mri'>tomolearn demo: mri</h2>" in page
    assert page.index("id='ct'") < page.index("id='mri'") < page.index("id='reproduce'")
    ids = _ids(page)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for kind in ("ct", "mri"):
        for part in ("settings", "metrics", "flagged", "images", "timings"):
            assert f"{kind}-{part}" in ids, (kind, part)
    links = re.findall(r"href='#([^']*)'", page)
    assert set(links) <= set(ids) and {"ct", "mri", "reproduce"} <= set(links)
    assert not re.search(r"""(src|href)\s*=\s*['"](?!data:|#)""", page)  # still self-contained
    assert page.count("<pre>") == 1 and "run_demo_all(" in page  # one reproduce command


def test_metrics_json_has_both_sections_and_every_figure(report):
    out, result = report
    doc = json.loads((out / "metrics.json").read_text())
    assert [s["task"] for s in doc["sections"]] == ["ct", "mri"]
    for s in doc["sections"]:
        assert s["results"] and all(r["task"] == s["task"] for r in s["results"])
        assert {r["method"] for r in s["results"]} == set(TINY["methods"][s["task"]])
        assert [r["family"] for r in s["results"]] == TINY["families"][s["task"]]
        assert "command" not in s["meta"] and "versions" not in s["meta"]  # the page's
        assert s["meta"]["title"] == f"tomolearn demo: {s['task']}"
        assert f"{s['task']}:\n{s['table']}" in doc["table"]
    assert doc["results"] == [r for s in doc["sections"] for r in s["results"]]
    assert set(doc["meta"]["timings"]) >= {"section ct", "section mri"}
    assert "run_demo_all" in doc["meta"]["command"] and "torch" in doc["meta"]["versions"]
    page = (out / "index.html").read_text(encoding="utf-8")
    n_cases = sum(len(s["cases"]) for s in doc["sections"])
    assert n_cases == 3 and page.count("data:image/png;base64,") == n_cases
    assert result["sections"][0]["results"] == doc["sections"][0]["results"]
    assert result["report"] == str(out / "index.html") and result["seconds_total"] > 0


def test_each_section_has_its_own_calibration(report):
    _, result = report
    for s in result["sections"]:
        cal = s["meta"]["bounds"]["calibration"]
        assert cal["task"] == tl.task(s["task"]).spec()  # the registered default, not tiny
        assert cal["dataset"] == f"{tl.task(s['task']).families[0]}/validation" and cal["n"] == 9
        (row, *_) = s["results"]
        assert row["alpha"] == 0.2 and row["calibration_n"] == 9 and row["rmse_bound"] > 0
        assert "RMSE bound" in s["bounds_table"] and row["method"] in s["bounds_table"]


def test_refuses_a_non_empty_folder_and_bad_input_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(demo_all, "demo_section", lambda *a, **k: pytest.fail("did work"))
    out = tmp_path / "rep"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite"):
        run_demo_all(out, n_images=1, bounds=False, progress=False, **TINY)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    with pytest.raises(ValueError, match="'fbp' does not support task 'mri'"):
        run_demo_all(tmp_path / "x", n_images=1, bounds=False, progress=False,
                     **{**TINY, "methods": {"ct": ["fbp"], "mri": ["fbp"]}})
    with pytest.raises(ValueError, match="task 'ct' given twice"):
        run_demo_all(tmp_path / "x", tasks=["ct", tl.task("ct").tiny()], progress=False)
    assert not (tmp_path / "x").exists()


def test_default_tasks_are_the_registered_ones():
    """Without ``tasks`` every registered kind is a section; a per-task mapping naming any
    other kind is refused (before any work), listing them in order, ct first."""
    kinds = ", ".join(tl.tasks())
    assert tl.tasks()[0] == "ct" and "mri" in tl.tasks()
    with pytest.raises(ValueError, match=rf"task 'cats', which is not among the tasks \({kinds}\)"):
        run_demo_all("unused", methods={"cats": ["fbp"]}, progress=False)


def _section(task, name="x"):
    gt = np.random.default_rng(0).random((8, 8))
    row = {"method": "fbp", "dataset": "x/test", "n": 1, "psnr": 20.0, "psnr_std": 0.0,
           "ssim": 0.5, "ssim_std": 0.0, "seconds_per_image": 0.01, "task": task}
    case = {"name": name, "dataset": "x/test", "ground_truth": gt, "sinogram": gt,
            "reconstructions": {"fbp": gt}, "metrics": {"fbp": {"psnr": 20.0, "ssim": 0.5}}}
    return {"task": task, "cases": [case], "rows": [row], "meta": {"title": task}}


def test_write_report_sections_checks_every_section_before_writing(tmp_path):
    bad = _section("b")
    bad["rows"][0].pop("ssim_std")
    with pytest.raises(ValueError, match="ssim_std"):
        write_report_sections(tmp_path / "a", [_section("a"), bad], {})
    with pytest.raises(ValueError, match="section 'a' given twice"):
        write_report_sections(tmp_path / "a", [_section("a"), _section("a")], {})
    with pytest.raises(ValueError, match="the anchor 'a-b'"):  # distinct names, same anchor
        write_report_sections(tmp_path / "a", [_section("a b"), _section("A-B")], {})
    with pytest.raises(ValueError, match="empty"):
        write_report_sections(tmp_path / "a", [], {})
    assert not (tmp_path / "a").exists()
    index = write_report_sections(tmp_path / "a", [_section("a"), _section("b")], {"title": "T"})
    page = index.read_text(encoding="utf-8")
    assert "<h1>T</h1>" in page and "id='a-images'" in page and "id='b-images'" in page
    with pytest.raises(FileExistsError):
        write_report_sections(tmp_path / "a", [_section("c")], {})
    assert "id='c'" not in index.read_text(encoding="utf-8")


# -- the command line ----------------------------------------------------------------------------
@pytest.mark.parametrize("flag", [["--angles", "20"], ["--noise", "0.05"],
                                  ["--task-set", "n_angles=20"], ["--methods", "fbp"],
                                  ["--families", "ellipses"]])
def test_cli_task_all_refuses_task_specific_flags(tmp_path, capsys, monkeypatch, flag):
    monkeypatch.setattr(cli_demo, "run_demo_all", lambda *a, **k: pytest.fail("ran the demo"))
    status = main(["demo", "--task", "all", *flag, "--out", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
    assert f"{flag[0]} changes one task" in err and "run one task to change it" in err
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("verb", [["benchmark", "ellipses"], ["evaluate", "--methods", "fbp"],
                                  ["data", "generate", "ellipses", "--out", "x.h5"]])
def test_only_demo_takes_task_all(tmp_path, capsys, monkeypatch, verb):
    monkeypatch.chdir(tmp_path)
    status = main([*verb, "--task", "all"])
    err = capsys.readouterr().err
    assert status == 2 and "--task all: name one task" in err, err
    assert not any(tmp_path.iterdir())


def test_cli_task_all_runs_every_task_and_prints_each_section(tmp_path, capsys, monkeypatch):
    """The CLI passes every registered task and the shared flags; the sections are made tiny
    here (the real defaults take minutes)."""
    seen = {}

    def tiny_run(out, **kw):
        seen.update(kw)
        return run_demo_all(out, **{**kw, **TINY})

    monkeypatch.setattr(cli_demo, "run_demo_all", tiny_run)
    out, js = tmp_path / "r", tmp_path / "all.json"
    status = main(["demo", "--task", "all", "--n-images", "1", "--calibration-n", "9",
                   "--alpha", "0.2", "--seed", "2", "--out", str(out), "--json", str(js),
                   "--quiet"])
    stdout = capsys.readouterr().out
    assert status == 0
    assert seen["tasks"] == tl.tasks() and seen["n_images"] == 1 and seen["seed"] == 2
    assert seen["calibration_n"] == 9 and seen["alpha"] == 0.2 and seen["bounds"] is True
    assert seen["command"].startswith("tomolearn demo --task all")
    assert stdout.index("== task ct ==") < stdout.index("== task mri ==") < stdout.index("report:")
    assert stdout.count("error bounds (alpha 0.2") == 2 and "brain validation" in stdout
    doc = json.loads(js.read_text())
    assert doc["results"] == json.loads((out / "metrics.json").read_text())["results"]
    assert [s["task"] for s in doc["sections"]] == ["ct", "mri"]
