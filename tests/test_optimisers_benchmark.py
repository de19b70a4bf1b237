"""The optimiser benchmark and its classical foundation: smoothed TV, L-BFGS, the table, the CLI.

Smoothed TV's gradient matches autograd and obeys its Lipschitz bound; L-BFGS reaches known
minimisers in far fewer iterations than gradient descent and refuses what it cannot handle;
the benchmark on tiny CT problems keeps its row contract; ``tomolearn benchmark optimisers``
writes it as JSON and rejects unknown names.  Tiny sizes throughout (one thread, seconds).
"""

import json

import pytest
import torch

import tomolearn as tl
from tomolearn import solvers as S
from tomolearn.cli import main
from tomolearn.operators import MatrixOperator
from tomolearn.studies import benchmark_optimisers, format_optimisers_table
from tomolearn.studies import optimisers as O

KEYS = ("problem", "method", "in_distribution", "applies", "note", "iterations_to_1e-3",
        "seconds_to_1e-3", "iterations_to_1e-6", "seconds_to_1e-6", "seconds_per_iteration",
        "safeguard_rate", "final_gap")


def _images(seed=0, shape=(2, 1, 7, 9), dtype=torch.float64):
    """Random images with a flat patch (|grad x| << eps, where the curvature is largest)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    if dtype.is_complex:
        x = torch.complex(x, torch.randn(shape, generator=g, dtype=torch.float64))
    x[..., :3, :4] = 0.3
    return x.to(dtype)


# -- smoothed TV ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_smooth_tv_value_and_gradient_match_autograd(dtype):
    reg = S.SmoothTotalVariation(0.7, eps=0.05)
    x = _images(dtype=dtype).requires_grad_(True)
    dx = torch.zeros(x.shape, dtype=dtype)
    dy = torch.zeros(x.shape, dtype=dtype)
    dx[..., :-1, :] = x[..., 1:, :] - x[..., :-1, :]
    dy[..., :, :-1] = x[..., :, 1:] - x[..., :, :-1]
    expected = 0.7 * torch.sqrt(dx.abs() ** 2 + dy.abs() ** 2 + 0.05 ** 2).sum(dim=(-2, -1))
    value = reg.value(x)
    assert value.shape == (2, 1)
    torch.testing.assert_close(value, expected.detach(), rtol=1e-12, atol=0)
    value.sum().backward()
    torch.testing.assert_close(reg.gradient(x.detach()), x.grad, rtol=1e-10, atol=1e-12)
    # eps -> 0: the TV of the non-smooth regulariser
    tv = S.TotalVariation(0.7).value(x.detach())
    torch.testing.assert_close(S.SmoothTotalVariation(0.7, 1e-9).value(x.detach()), tv, rtol=1e-6,
                               atol=0)


def test_smooth_tv_lipschitz_bound_holds_on_random_pairs():
    reg = S.SmoothTotalVariation(1.3, eps=0.02)
    assert reg.lipschitz == pytest.approx(8 * 1.3 / 0.02) and reg.smooth and not reg.proximable
    g = torch.Generator().manual_seed(3)
    worst = 0.0
    for k in range(40):
        a = _images(seed=k, shape=(1, 1, 8, 8))
        scale = 10.0 ** torch.empty(1).uniform_(-4, 0, generator=g).item()
        # checkerboard-like perturbations excite the largest eigenvalue of grad^T grad (8)
        sign = (-1.0) ** (torch.arange(8)[:, None] + torch.arange(8)[None, :])
        b = a + scale * (torch.randn(a.shape, generator=g, dtype=a.dtype) + 3 * sign)
        ratio = (torch.linalg.vector_norm(reg.gradient(a) - reg.gradient(b))
                 / torch.linalg.vector_norm(a - b)).item()
        worst = max(worst, ratio)
    assert worst <= reg.lipschitz * (1 + 1e-9)
    assert worst > 0.2 * reg.lipschitz  # the bound is not vacuous on these pairs


def test_smooth_tv_refuses_bad_arguments():
    with pytest.raises(ValueError, match="eps must be a positive"):
        S.SmoothTotalVariation(1.0, eps=0.0)
    with pytest.raises(ValueError, match="weight"):
        S.SmoothTotalVariation(-1.0, eps=0.1)
    with pytest.raises(ValueError, match="at least two image dims"):
        S.lbfgs(MatrixOperator(torch.eye(3, dtype=torch.float64)),
                torch.ones(1, 1, 3, dtype=torch.float64), None, S.SmoothTotalVariation(1.0, 0.1))


# -- L-BFGS --------------------------------------------------------------------------------------
def _ill_conditioned(seed=0, m=40, n=20, batch=2):
    """Least squares with singular values from 1 to 1e-2 (A^T A has condition number 1e4)."""
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(m, n, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    a = u @ torch.diag(torch.logspace(0, -2, n, dtype=torch.float64)) @ v.T
    y = torch.randn((batch, 1, m), generator=g, dtype=torch.float64)
    return MatrixOperator(a), a, y


def _rel(a, b):
    return (torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b)).item()


def _first_below(objective, f_star, target=1e-6):
    """First iteration (1-based) at which every problem's relative gap is <= target."""
    gaps = ((objective - f_star) / f_star.abs()).amax(dim=(1, 2))
    hit = torch.nonzero(gaps <= target)
    return int(hit[0]) + 1 if hit.numel() else 10 ** 9


def test_lbfgs_reaches_the_tikhonov_minimiser_far_faster_than_gradient_descent():
    op, a, y = _ill_conditioned()
    reg = S.Tikhonov(1e-3)
    lhs = a.T @ a + 1e-3 * torch.eye(a.shape[1], dtype=a.dtype)
    exact = torch.linalg.solve(lhs, a.T @ y.reshape(-1, a.shape[0]).T).T.reshape(2, 1, -1)
    f_star = S.LeastSquares().value(op, exact, y) + reg.value(exact)
    res = S.lbfgs(op, y, None, reg, n_iter=200)
    assert _rel(res.x, exact) < 1e-6, res.message
    assert res.objective.shape == (res.iterations, 2, 1)
    assert bool((res.objective[1:] <= res.objective[:-1] + 1e-12).all())  # Armijo: monotone
    gd = S.gradient_descent(op, y, None, reg, n_iter=2000)
    assert _rel(S.gradient_descent(op, y, None, reg, n_iter=200).x, exact) > 1e-2
    # scipy's L-BFGS-B (memory 10) needs about as many iterations on this problem (~80 to 1e-6)
    assert 10 * _first_below(res.objective, f_star) < _first_below(gd.objective, f_star)
    # each (b, c) is its own problem: the batch equals its images solved one at a time (before
    # the floating-point floor, where the problems' skipped curvature pairs may differ)
    torch.testing.assert_close(S.lbfgs(op, y[1:], None, reg, n_iter=40).x,
                               S.lbfgs(op, y, None, reg, n_iter=40).x[1:], rtol=1e-9, atol=1e-12)


def test_lbfgs_with_smooth_tv_matches_a_long_accelerated_gradient_run():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(24, 36, generator=g, dtype=torch.float64)
    op = MatrixOperator(a, domain_shape=(6, 6))
    y = torch.randn((2, 1, 24), generator=g, dtype=torch.float64)
    reg = S.SmoothTotalVariation(0.5, eps=0.05) + S.Tikhonov(0.1)
    ref = S.gradient_descent(op, y, None, reg, n_iter=6000, nesterov=True)
    res = S.lbfgs(op, y, None, reg, n_iter=300, tol=1e-12)
    f_ref, f = ref.objective[-1], res.objective[-1]
    assert bool((f <= f_ref * (1 + 1e-10)).all())
    assert _rel(res.x, ref.x) < 1e-5
    # to a relative gap of 1e-6 L-BFGS needs far fewer iterations than gradient descent
    gd = S.gradient_descent(op, y, None, reg, n_iter=3000)
    assert 5 * _first_below(res.objective, f_ref) < _first_below(gd.objective, f_ref)


def test_lbfgs_refuses_non_smooth_or_boxed_regularisers_and_bad_history():
    op, _, y = _ill_conditioned()
    x_op = MatrixOperator(torch.eye(16, dtype=torch.float64), domain_shape=(4, 4))
    y_img = torch.ones(1, 1, 16, dtype=torch.float64)
    with pytest.raises(TypeError, match="lbfgs needs a smooth regulariser.*TotalVariation"):
        S.lbfgs(x_op, y_img, None, S.TotalVariation(1.0))
    with pytest.raises(TypeError, match="without a box"):
        S.lbfgs(x_op, y_img, None, S.SmoothTotalVariation(1.0, 0.1, lower=0.0))
    with pytest.raises(ValueError, match="history must be a positive int"):
        S.lbfgs(op, y, None, None, history=0)
    # no regulariser: plain least squares works
    assert S.lbfgs(op, y, n_iter=5).iterations == 5


# -- the benchmark -------------------------------------------------------------------------------
def _tiny_build(regulariser):
    def build(n, seed):
        t = tl.task("ct").tiny()
        data = tl.data.SimulatedDataset("ellipses", "test", t, size=(seed + 1) * n,
                                        dtype=torch.float64)
        y, _ = data.batch(range(seed * n, (seed + 1) * n))
        return data.operator(), y, S.LeastSquares(), regulariser
    return build


TINY_TV = O.Problem("tiny-tv", _tiny_build(S.TotalVariation(0.2)), True, "tiny TV")
TINY_SMOOTH = O.Problem("tiny-smooth", _tiny_build(S.SmoothTotalVariation(0.2, eps=0.1)), False,
                        "tiny smoothed TV")


def test_benchmark_rows_keep_the_contract_on_tiny_problems():
    rows = benchmark_optimisers([TINY_TV, TINY_SMOOTH], n=2, max_iter=400, reference_iter=300)
    assert [(r["problem"], r["method"]) for r in rows] == \
        [(p, m) for p in ("tiny-tv", "tiny-smooth") for m in ("gd", "fista", "pdhg", "lbfgs")]
    by = {(r["problem"], r["method"]): r for r in rows}
    for r in rows:
        assert set(KEYS) <= set(r), set(KEYS) - set(r)
        assert r["in_distribution"] is (r["problem"] == "tiny-tv")
        assert r["safeguard_rate"] is None  # classical methods have no safeguard
        json.dumps(r)  # plain JSON
        if not r["applies"]:
            assert r["note"].startswith("does not apply")
            assert all(r[k] is None for k in KEYS[5:]), r
            continue
        assert r["seconds_per_iteration"] > 0 and r["final_gap"] >= 0
        if r["iterations_to_1e-3"] is not None and r["iterations_to_1e-6"] is not None:
            assert r["iterations_to_1e-3"] <= r["iterations_to_1e-6"]
            assert r["seconds_to_1e-3"] <= r["seconds_to_1e-6"]
    applies = {k for k, r in by.items() if r["applies"]}
    assert applies == {("tiny-tv", "fista"), ("tiny-tv", "pdhg"), ("tiny-smooth", "gd"),
                       ("tiny-smooth", "fista"), ("tiny-smooth", "lbfgs")}
    gd, lb = by["tiny-smooth", "gd"], by["tiny-smooth", "lbfgs"]
    assert lb["iterations_to_1e-3"] is not None and gd["iterations_to_1e-3"] is not None
    assert lb["iterations_to_1e-3"] < gd["iterations_to_1e-3"]
    assert lb["iterations_to_1e-6"] is not None
    table = format_optimisers_table(rows)
    assert "tiny-smooth*" in table and "lbfgs" in table and "n/a" in table


def test_benchmark_refuses_unknown_names_and_bad_budgets():
    with pytest.raises(KeyError, match="unknown problem 'nope'; registered: ct-tv"):
        benchmark_optimisers(["nope"])
    with pytest.raises(KeyError, match="unknown optimiser 'nope'; registered: gd, fista"):
        benchmark_optimisers([TINY_SMOOTH], ["nope"])
    with pytest.raises(ValueError, match="max_iter must be an int >= 1, got 0"):
        benchmark_optimisers([TINY_SMOOTH], max_iter=0)
    with pytest.raises(ValueError, match="already registered"):
        O.register_optimiser("gd", O.optimiser("gd").run, O.optimiser("gd").applies)
    assert O.problems()[:4] == ["ct-tv", "ct-tv-smooth", "ct-tv-smooth-ct-slice",
                                "ct-tv-smooth-60-angles"]
    assert [O.problem(p).in_distribution for p in O.problems()[:4]] == [True, True, False, False]


# -- the command line ------------------------------------------------------------------------------
def test_cli_writes_the_table_as_json_and_rejects_unknown_names(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(O._PROBLEMS, "tiny-smooth", TINY_SMOOTH)
    out = tmp_path / "opt.json"
    assert main(["benchmark", "optimisers", "--problems", "tiny-smooth", "--methods", "gd,lbfgs",
                 "--n", "1", "--max-iter", "60", "--reference-iter", "100",
                 "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert [r["method"] for r in rows] == ["gd", "lbfgs"]
    for r in rows:
        assert set(KEYS) <= set(r)
    assert "lbfgs" in capsys.readouterr().out
    for flag, value, message in (("--methods", "gd,nope", "--methods: unknown method 'nope'"),
                                 ("--problems", "nope", "--problems: unknown problem 'nope'"),
                                 ("--max-iter", "0", "--max-iter must be at least 1, got 0")):
        assert main(["benchmark", "optimisers", flag, value]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    assert main(["benchmark", "optimisers", "--methods", "x"]) == 2
    assert "expected some of gd,fista,pdhg,lbfgs" in capsys.readouterr().err
