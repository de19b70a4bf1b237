"""The MRI operator speed benchmark against sigpy (rows, CLI, registry) and the SENSE
operators' folded centring shifts (the same results as fft2c to float precision).  Speed
ratios are never asserted: only keys, positive times and agreement."""

import json

import numpy as np
import pytest
import torch

import tomolearn.modalities.mri.speed  # noqa: F401  (registers the "mri" cases)
from tomolearn.cli import main
from tomolearn.modalities.mri import (MultiCoilSENSE, SingleCoilCartesian, birdcage_maps, fft2c,
                                      ifft2c, random_mask)
from tomolearn.modalities.mri.operators import _centring_phases
from tomolearn.modalities.mri.speed import (SENSE_CASES, benchmark_sense, format_sense_table,
                                            parse_sense_case)
from tomolearn.operators.speed import operator_speed, operator_speed_tasks

KEYS = ("task", "geometry", "batch", "forward_ms", "adjoint_ms", "peer", "peer_forward_ms",
        "peer_adjoint_ms", "forward_ratio", "adjoint_ratio")


# -- the benchmark ---------------------------------------------------------------------------------
def test_benchmark_rows_have_the_operator_benchmark_keys(one_thread):
    pytest.importorskip("sigpy")
    rows = benchmark_sense(["16x16-3coils", "17x15-2coils"], batches=(1, 2), repeats=1)
    assert [(r["geometry"], r["batch"]) for r in rows] == [
        ("16x16-3coils", 1), ("16x16-3coils", 2), ("17x15-2coils", 1), ("17x15-2coils", 2)]
    for r in rows:
        assert r["task"] == "mri" and r["peer"] == "sigpy" and r["dtype"] == "complex64"
        for key in KEYS[3:5] + KEYS[6:]:
            assert r[key] > 0, key
        assert r["peer_rel_diff"] < 1e-5  # both time the same operator
    assert rows[2]["image_shape"] == [17, 15] and rows[2]["range_shape"] == [2, 17, 15]
    table = format_sense_table(rows)
    assert "sigpy" in table and "17x15-2coils" in table


def test_benchmark_without_the_peer_and_in_double_precision():
    (row,) = benchmark_sense(["12x12-2coils"], batches=(1,), repeats=1, dtype=torch.float64,
                             peer=False)
    assert row["peer"] is None and row["peer_forward_ms"] is None and row["forward_ratio"] is None
    assert row["forward_ms"] > 0 and row["adjoint_ms"] > 0 and row["dtype"] == "complex128"
    assert "-" in format_sense_table([row])


def test_case_names():
    assert parse_sense_case("160x160-8coils") == (160, 160, 8)
    assert parse_sense_case("20x24-1coil") == (20, 24, 1)
    assert [parse_sense_case(c)[2] for c in SENSE_CASES] == [8, 16, 8, 16]
    for bad in ("160x160", "4x4-2coils", "160x160-0coils", "axb-2coils", 3):
        with pytest.raises(ValueError, match="HxW-Ncoils"):
            parse_sense_case(bad)


def test_tasks_register_their_operator_speed_cases():
    assert {"ct", "mri"} <= set(operator_speed_tasks())
    mri, ct = operator_speed("mri"), operator_speed("ct")
    assert mri.cases == SENSE_CASES and mri.batches == (1, 8) and mri.peer == "sigpy"
    assert mri.accepted("24x24-4coils") and not mri.accepted("ellipses")
    assert ct.accepted("ellipses") and not ct.accepted("24x24-4coils")
    assert "backend" in ct.options and "backend" not in mri.options
    with pytest.raises(KeyError, match="registers no operator speed cases"):
        operator_speed("no-such-task")


def test_ct_rows_carry_the_common_peer_keys(one_thread):
    (row,) = operator_speed("ct").run(["ellipses"], batches=(1,), repeats=1)
    assert row["task"] == "ct" and row["forward_ms"] > 0 and row["adjoint_ms"] > 0
    assert row["peer_forward_ms"] == row["astra_forward_ms"]
    assert row["peer"] == ("astra" if row["astra_forward_ms"] is not None else None)


def test_cli_benchmark_operators_task_mri_writes_json(tmp_path, capsys, one_thread):
    pytest.importorskip("sigpy")
    out = tmp_path / "ops.json"
    assert main(["benchmark", "operators", "--task", "mri", "--geometries", "16x16-2coils",
                 "--batches", "1,2", "--repeats", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert [(r["geometry"], r["batch"]) for r in rows] == [("16x16-2coils", 1),
                                                          ("16x16-2coils", 2)]
    for r in rows:
        assert r["task"] == "mri" and r["peer"] == "sigpy"
        for key in ("forward_ms", "adjoint_ms", "peer_forward_ms", "peer_adjoint_ms",
                    "forward_ratio", "adjoint_ratio", "peak_rss_mb"):
            assert r[key] > 0, key
    assert "ratio" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--geometries", "ellipses"], "unknown geometry 'ellipses' for task mri"),
    (["--backend", "sparse"], "--backend is not an option"),
    (["--task-set", "n_coils=4"], "--task-set does not apply"),
    (["--batches", "0"], "--batches must be positive"),
])
def test_cli_benchmark_operators_task_mri_errors(extra, message, capsys):
    assert main(["benchmark", "operators", "--task", "mri", *extra]) == 2
    assert message in capsys.readouterr().err


# -- the operators' folded shifts ------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 5, 8, 9])
def test_centring_phases_fold_the_shifts(n):
    d_in, d_out = _centring_phases(n)
    x = torch.randn(n, dtype=torch.complex128, generator=torch.Generator().manual_seed(n))
    ref = torch.fft.fftshift(torch.fft.fft(torch.fft.ifftshift(x), norm="ortho"))
    torch.testing.assert_close(d_out * torch.fft.fft(d_in * x, norm="ortho"), ref, rtol=0,
                               atol=1e-14)
    if n % 2 == 0:
        assert bool((d_in.imag == 0).all()) and set(d_in.real.tolist()) <= {-1.0, 1.0}


@pytest.mark.parametrize("shape", [(12, 10), (11, 9), (12, 9), (7, 8)])
@pytest.mark.parametrize("dtype, tol", [(torch.complex64, 2e-6), (torch.complex128, 1e-13)])
def test_operators_equal_the_centred_fft_definition(shape, dtype, tol):
    maps = birdcage_maps(4, shape, dtype=dtype)
    mask = random_mask(shape, 2.0, 0.2, seed=1)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((3, 2) + shape, dtype=dtype, generator=gen)
    y = torch.randn((3, 2, 4) + shape, dtype=dtype, generator=gen)
    op = MultiCoilSENSE(maps, mask)
    m = mask.to(dtype)
    close = lambda a, b: torch.testing.assert_close(a, b, rtol=0, atol=tol * float(b.abs().max()))
    close(op(x), fft2c(x.unsqueeze(2) * maps) * m)
    close(op.adjoint(y), (ifft2c(y * m) * maps.conj()).sum(2))
    single = SingleCoilCartesian(mask)
    close(single(x), fft2c(x) * m)
    close(single.adjoint(y[:, :, 0]), ifft2c(y[:, :, 0] * m))
    assert op(x).dtype == dtype and single.adjoint(y[:, :, 0]).dtype == dtype


def test_folded_factors_follow_the_buffers():
    """The cached maps and mask follow .to(), dtype changes and in-place loads."""
    shape = (10, 12)
    op = MultiCoilSENSE(birdcage_maps(3, shape), random_mask(shape, 2.0, 0.2, seed=2))
    x = torch.randn((1, 1) + shape, dtype=torch.complex128,
                    generator=torch.Generator().manual_seed(3))
    first = op(x)
    op.float()
    assert op(x.to(torch.complex64)).dtype == torch.complex64
    op.double()
    torch.testing.assert_close(op(x), first, rtol=0, atol=1e-6)
    other = MultiCoilSENSE(birdcage_maps(3, shape, radius=2.0), random_mask(shape, 2.0, 0.2,
                                                                            seed=4))
    op.load_state_dict(other.state_dict())
    torch.testing.assert_close(op(x), other(x), rtol=0, atol=1e-12)
    assert float((op(x) - first).abs().max()) > 1e-3
    sigpy_mri = pytest.importorskip("sigpy.mri")
    peer = sigpy_mri.linop.Sense(op.maps.numpy(), weights=op.mask.numpy().astype(np.float64))
    np.testing.assert_allclose(op(x)[0, 0].numpy(), peer.apply(x[0, 0].numpy()), atol=1e-12)


def test_cpu_batches_in_steps_equal_one_pass(monkeypatch):
    """Large CPU batches go through the operator a few images at a time (cache-sized steps):
    the same numbers as one pass, and one pass when autograd records."""
    from tomolearn.modalities.mri import operators

    shape = (16, 14)
    op = MultiCoilSENSE(birdcage_maps(3, shape), random_mask(shape, 2.0, 0.2, seed=5))
    gen = torch.Generator().manual_seed(6)
    x = torch.randn((5, 2) + shape, dtype=torch.complex128, generator=gen)
    y = torch.randn((5, 2, 3) + shape, dtype=torch.complex128, generator=gen)
    whole_fwd, whole_adj = op(x), op.adjoint(y)
    per_image = 16 * 2 * 3 * 16 * 14
    for step in (1, 2, 4):
        monkeypatch.setattr(operators, "_CHUNK_BYTES", step * per_image)
        assert op._step(x) == step
        torch.testing.assert_close(op(x), whole_fwd, rtol=0, atol=1e-15)
        torch.testing.assert_close(op.adjoint(y), whole_adj, rtol=0, atol=1e-15)
    xg = x.clone().requires_grad_(True)
    assert op._step(xg) == 5
    (op(xg).abs() ** 2).sum().backward()  # gradient through the (unchunked) adjoint
    torch.testing.assert_close(xg.grad, 2 * op.adjoint(op(x)), rtol=0, atol=1e-12)


def test_speed_table_layout():
    from tomolearn.operators.speed import speed_table

    columns = [("case", "geometry", 8, ""), ("fwd ms", "forward_ms", 9, ".2f"),
               ("ratio", "forward_ratio", 8, "x")]
    table = speed_table([{"geometry": "a", "forward_ms": 1.5, "forward_ratio": 2.0},
                         {"geometry": "bb", "forward_ms": 0.25, "forward_ratio": None}],
                        columns, "note")
    assert table.splitlines() == ["case       fwd ms   ratio", "-" * 25,
                                  "a            1.50   2.00x", "bb           0.25       -",
                                  "note"]
