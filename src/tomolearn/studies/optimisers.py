"""How fast optimisers solve reconstruction problems: the "learning to optimise" benchmark.

For every (problem, method) pair the benchmark runs the method on each of ``n`` images, one
image at a time (batch 1), and reports the iterations and wall-clock seconds it needs to reach
a relative objective gap ``(F(x_k) - F*) / |F*|`` of 1e-3 and of 1e-6, where ``F`` is the
problem's objective ``F(A x; y) + R(x)`` and ``F*`` the reference minimum of that image.

Problems (:func:`register_problem`; ``build(n, seed) -> (op, y, fidelity, regulariser)``,
``y`` of shape ``(n, 1, *op.range_shape)``, float64 so that a gap of 1e-6 is resolved):

- ``ct-tv``: the ``ct`` task (DIVal ellipses, 128 x 128, 30 angles), test images,
  ``1/2 ||A x - y||^2 + 2 TV(x)`` (the ``tv`` method's tuned weight; non-smooth; no box);
- ``ct-tv-smooth``: the same with :class:`~tomolearn.solvers.SmoothTotalVariation`
  ``(2.0, eps=0.01)`` (smooth);
- out of distribution (for optimisers learned on ``ct-tv-smooth``): ``ct-tv-smooth-ct-slice``
  (the ``ct-slice`` family of real CT slices) and ``ct-tv-smooth-60-angles`` (the ``ct`` task
  with 60 angles).

Images are the test split's samples ``seed * n`` to ``seed * n + n - 1``.

Methods (:func:`register_optimiser`; ``run(problem, n_iter, callback) -> Result`` and
``applies(regulariser) -> bool``): ``gd`` (gradient descent, step ``1/L``, smooth problems),
``fista`` (FISTA [2]_ with the TV prox by 10 warm-started FGP iterations on ``ct-tv``; on
smooth problems Nesterov-accelerated gradient descent, step ``1/L``), ``pdhg`` (Chambolle-Pock
[3]_ on the non-smooth TV problem, the library's default steps) and ``lbfgs`` (L-BFGS [1]_,
memory 10, backtracking Armijo line search; smooth problems).  A learned optimiser is one more
registration; if it falls back to a classical step when its own is unsafe it sets
``result.safeguard_rate`` (the fraction of iterations that fell back), reported per row (null
for the classical methods, which have none).

Reference minimum ``F*`` per problem and image: the lowest objective of any method's run and
of a long reference run: L-BFGS (memory 10) for up to :data:`REFERENCE_ITER` ``["smooth"]`` =
1000 iterations on smooth problems (it stops at the floating-point floor, after 110 to 170
iterations on the registered problems), PDHG for ``["non-smooth"]`` = 20 000 iterations on
``ct-tv``.  Measured on the first two ellipses test images (float64): on ``ct-tv-smooth``
3000 Nesterov iterations end 3e-11 above the L-BFGS minimum, 3000 gradient-descent
iterations 3e-7 above it, so that ``F*`` is at the floating-point floor.  On ``ct-tv``, PDHG
after 10 000 iterations is 3e-8 and 8e-9 above its value after 20 000, and FISTA with an
accurate prox (50 FGP iterations, 3000 iterations) gets 6e-9 and 2e-9 below that value: ``F*``
of ``ct-tv`` is accurate to about 1e-8 relative (not to the floating-point floor, but 100
times finer than the 1e-6 target).  FISTA with 10 inner iterations plateaus 9e-5 above ``F*``
(the inexact prox) and never reaches 1e-6.  Each row carries ``reference`` (the run, with the
iterations it took) and ``reference_margin``: the median over the images of ``(min over the
methods' runs of F - F_reference) / |F*|``; positive means the reference run is lower than
every method, 0 that a method (L-BFGS itself on smooth problems) reaches the same floor.

Timing: ``time.perf_counter()`` just before calling the method, then in the ``callback`` after
every iteration; the seconds to a target are the difference at the first iteration whose gap
is at most the target (nothing is subtracted: the method's set-up, its objective evaluation
and the callback's own cost are inside).  The operator norm is computed once per problem
before any run (cached by the operator), so no method pays its power iteration.  Iterations to
a target count the first iteration at which the gap is at most the target (FISTA and PDHG are
not monotone: the gap may rise above it later).  Per row: medians over the images, null where
some image does not reach the target within ``max_iter`` iterations or where the method does
not apply (``applies`` false, ``note`` says why).  Timings depend on the machine and its load:
iteration counts are the comparable figures.

References
----------
.. [1] J. Nocedal and S. J. Wright, "Numerical Optimization", 2nd ed., Springer, 2006
       (L-BFGS, Algorithms 7.4 and 7.5).
.. [2] A. Beck and M. Teboulle, "A fast iterative shrinkage-thresholding algorithm for linear
       inverse problems", SIAM J. Imaging Sci. 2(1), 183-202, 2009.
.. [3] A. Chambolle and T. Pock, "A first-order primal-dual algorithm for convex problems
       with applications to imaging", J. Math. Imaging Vis. 40, 120-145, 2011.
.. [4] T. Chen, X. Chen, W. Chen, H. Heaton, J. Liu, Z. Wang and W. Yin, "Learning to
       optimize: a primer and a benchmark", J. Mach. Learn. Res. 23(189), 1-59, 2022.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from ..data import SimulatedDataset
from ..registry import task as as_task
from ..solvers import (LeastSquares, Result, SmoothTotalVariation, TotalVariation, fista,
                       gradient_descent, lbfgs, pdhg)

__all__ = ["TARGETS", "MAX_ITER", "REFERENCE_ITER", "Problem", "Instance", "Optimiser",
           "register_problem", "problems", "problem", "register_optimiser", "optimisers",
           "optimiser", "benchmark_optimisers", "format_optimisers_table"]

#: The relative objective gaps the benchmark times.
TARGETS = (1e-3, 1e-6)
#: Default iteration budget per (problem, method, image).
MAX_ITER = 3000
#: Iterations of the reference run: L-BFGS on smooth problems, PDHG on non-smooth ones.
REFERENCE_ITER = {"smooth": 1000, "non-smooth": 20000}
#: The regularisation of the CT problems: the ``tv`` method's tuned weight for ``ct``, and the
#: smoothing of the smooth variants.
TV_WEIGHT, TV_EPS = 2.0, 0.01


# -- problems -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """A registered problem: ``build(n, seed) -> (op, y, fidelity, regulariser)``, ``y`` of
    shape ``(n, 1, *op.range_shape)``; ``in_distribution``: whether learned optimisers are
    trained on this distribution of problems (the others test their generalisation)."""

    name: str
    build: Callable[[int, int], tuple]
    in_distribution: bool
    description: str = ""


@dataclass
class Instance:
    """One built problem, ``min_x F(A x; y) + R(x)`` for every image of ``y`` (B, 1, ...):
    what an optimiser's ``run`` receives."""

    name: str
    op: object
    y: torch.Tensor
    fidelity: object
    regulariser: object


_PROBLEMS: Dict[str, Problem] = {}


def register_problem(name: str, build: Callable[[int, int], tuple], in_distribution: bool,
                     description: str = "") -> Problem:
    """Register ``build(n, seed) -> (op, y, fidelity, regulariser)`` under ``name``."""
    if not isinstance(name, str) or not name or "," in name:
        raise ValueError(f"a problem name must be a non-empty string without commas, got {name!r}")
    if name in _PROBLEMS:
        raise ValueError(f"problem {name!r} is already registered")
    if not callable(build):
        raise TypeError(f"build must be callable, got {type(build).__name__}")
    _PROBLEMS[name] = Problem(name, build, bool(in_distribution), description)
    return _PROBLEMS[name]


def problems() -> List[str]:
    """The registered problem names, in registration order."""
    return list(_PROBLEMS)


def problem(name: str) -> Problem:
    """The registered problem ``name`` (KeyError listing the registered ones)."""
    if name not in _PROBLEMS:
        raise KeyError(f"unknown problem {name!r}; registered: {', '.join(_PROBLEMS)}")
    return _PROBLEMS[name]


def _ct_problem(family: str, regulariser: Callable[[], object], changes: Optional[dict] = None):
    """``build(n, seed)``: the ``ct`` task (with ``changes``), test images ``seed * n ...`` of
    ``family``, least squares and ``regulariser()``, float64."""
    def build(n: int, seed: int):
        t = as_task("ct").updated(changes or {})
        dataset = SimulatedDataset(family, "test", t, size=(seed + 1) * n, dtype=torch.float64)
        y, _ = dataset.batch(range(seed * n, (seed + 1) * n))
        return dataset.operator(), y, LeastSquares(), regulariser()
    return build


def _tv():
    return TotalVariation(TV_WEIGHT, inner_iter=10)


def _smooth_tv():
    return SmoothTotalVariation(TV_WEIGHT, eps=TV_EPS)


register_problem("ct-tv", _ct_problem("ellipses", _tv), True,
                 "ct ellipses (128x128, 30 angles), least squares + 2 TV (non-smooth)")
register_problem("ct-tv-smooth", _ct_problem("ellipses", _smooth_tv), True,
                 "ct ellipses, least squares + smoothed TV (2, eps 0.01)")
register_problem("ct-tv-smooth-ct-slice", _ct_problem("ct-slice", _smooth_tv), False,
                 "real CT slices (ct-slice family), least squares + smoothed TV")
register_problem("ct-tv-smooth-60-angles", _ct_problem("ellipses", _smooth_tv, {"n_angles": 60}),
                 False, "ct ellipses with 60 angles, least squares + smoothed TV")


# -- optimisers -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Optimiser:
    """A registered method: ``run(problem: Instance, n_iter, callback) -> Result`` (calling
    ``callback(k, x, objective)`` after every iteration, as the library's schemes do) and
    ``applies(regulariser) -> bool``; ``description`` a string or ``f(regulariser) -> str``."""

    name: str
    run: Callable[[Instance, int, Callable], Result]
    applies: Callable[[object], bool]
    description: Union[str, Callable[[object], str]] = ""

    def describe(self, regulariser) -> str:
        d = self.description
        return d(regulariser) if callable(d) else d


_OPTIMISERS: Dict[str, Optimiser] = {}


def register_optimiser(name: str, run: Callable[[Instance, int, Callable], Result],
                       applies: Callable[[object], bool],
                       description: Union[str, Callable[[object], str]] = "") -> Optimiser:
    """Register a method of the benchmark (classical or learned) under ``name``."""
    if not isinstance(name, str) or not name or "," in name:
        raise ValueError(f"an optimiser name must be a non-empty string without commas, "
                         f"got {name!r}")
    if name in _OPTIMISERS:
        raise ValueError(f"optimiser {name!r} is already registered")
    if not callable(run) or not callable(applies):
        raise TypeError("run and applies must be callable")
    _OPTIMISERS[name] = Optimiser(name, run, applies, description)
    return _OPTIMISERS[name]


def optimisers() -> List[str]:
    """The registered optimiser names, in registration order."""
    return list(_OPTIMISERS)


def optimiser(name: str) -> Optimiser:
    """The registered optimiser ``name`` (KeyError listing the registered ones)."""
    if name not in _OPTIMISERS:
        raise KeyError(f"unknown optimiser {name!r}; registered: {', '.join(_OPTIMISERS)}")
    return _OPTIMISERS[name]


def _smooth(reg) -> bool:
    return reg is None or bool(reg.smooth)


def _run_gd(p: Instance, n_iter: int, callback) -> Result:
    return gradient_descent(p.op, p.y, p.fidelity, p.regulariser, n_iter=n_iter, callback=callback)


def _run_fista(p: Instance, n_iter: int, callback) -> Result:
    if _smooth(p.regulariser):
        return gradient_descent(p.op, p.y, p.fidelity, p.regulariser, n_iter=n_iter,
                                nesterov=True, callback=callback)
    return fista(p.op, p.y, p.fidelity, p.regulariser, n_iter=n_iter, callback=callback)


def _run_pdhg(p: Instance, n_iter: int, callback) -> Result:
    return pdhg(p.op, p.y, p.fidelity, p.regulariser, n_iter=n_iter, callback=callback)


def _run_lbfgs(p: Instance, n_iter: int, callback) -> Result:
    return lbfgs(p.op, p.y, p.fidelity, p.regulariser, n_iter=n_iter, history=10,
                 callback=callback)


register_optimiser("gd", _run_gd,
                   lambda reg: _smooth(reg) and (reg is None or reg.lipschitz is not None),
                   "gradient descent, step 1/L (smooth problems)")
register_optimiser("fista", _run_fista,
                   lambda reg: _smooth(reg) or bool(reg.proximable),
                   lambda reg: "Nesterov-accelerated gradient descent, step 1/L" if _smooth(reg)
                   else "FISTA, prox by warm-started inner iterations (TV: FGP)")
register_optimiser("pdhg", _run_pdhg,
                   lambda reg: not _smooth(reg) and (reg.linear is not None or reg.proximable),
                   "PDHG (Chambolle-Pock), ratio 10 (non-smooth problems)")
register_optimiser("lbfgs", _run_lbfgs,
                   lambda reg: _smooth(reg) and (reg is None or not reg.bounded),
                   "L-BFGS, memory 10, backtracking Armijo (smooth problems, no box)")


# -- the benchmark --------------------------------------------------------------------------------
def _reference(inst: Instance, reference_iter: Optional[int]) -> tuple:
    """The reference run's lowest objective per image (numpy (B,)) and its description."""
    smooth = _smooth(inst.regulariser)
    kind = "smooth" if smooth else "non-smooth"
    n_iter = REFERENCE_ITER[kind] if reference_iter is None else reference_iter
    if smooth:
        res = lbfgs(inst.op, inst.y, inst.fidelity, inst.regulariser, n_iter=n_iter, history=10)
    else:
        res = pdhg(inst.op, inst.y, inst.fidelity, inst.regulariser, n_iter=n_iter)
    return res.objective[:, :, 0].min(dim=0).values.double().numpy(), \
        f"{'lbfgs' if smooth else 'pdhg'} x {res.iterations}"


def _timed(opt: Optimiser, inst: Instance, n_iter: int) -> tuple:
    """Run ``opt`` on ``inst``: (objective history (K,) float64, seconds (K,), result)."""
    stamps: List[float] = []

    def callback(k, x, objective):
        stamps.append(time.perf_counter())

    start = time.perf_counter()
    result = opt.run(inst, n_iter, callback)
    if not isinstance(result, Result):
        raise TypeError(f"optimiser {opt.name!r} returned {type(result).__name__}, expected a "
                        "tomolearn.solvers.Result")
    history = result.objective[:, 0, 0].double().numpy()
    if len(stamps) != len(history):
        raise RuntimeError(f"optimiser {opt.name!r} called the callback {len(stamps)} times for "
                           f"{len(history)} iterations; it must call it after every iteration")
    return history, np.asarray(stamps) - start, result


def _first(gaps: np.ndarray, target: float) -> Optional[int]:
    hit = np.flatnonzero(gaps <= target)
    return int(hit[0]) if hit.size else None


def _median(values: list) -> Optional[float]:
    """Median, or None when any value is None (a target some image did not reach)."""
    if not values or any(v is None for v in values):
        return None
    return float(np.median(values))


def _as_problem(p) -> Problem:
    return p if isinstance(p, Problem) else problem(p)


def _as_optimiser(m) -> Optimiser:
    return m if isinstance(m, Optimiser) else optimiser(m)


def _key(target: float) -> str:
    return f"{target:.0e}".replace("e-0", "e-")


def benchmark_optimisers(problems: Optional[Sequence[Union[str, Problem]]] = None,
                         methods: Optional[Sequence[Union[str, Optimiser]]] = None,
                         n: int = 2, max_iter: int = MAX_ITER, seed: int = 0,
                         reference_iter: Optional[int] = None,
                         progress: Optional[Callable[[str], None]] = None) -> List[dict]:
    """One row per (problem, method): iterations and seconds to relative gaps 1e-3 and 1e-6.

    Parameters
    ----------
    problems, methods : names (registered) or :class:`Problem` / :class:`Optimiser` objects
        Default: all registered.
    n : int
        Images per problem (each run alone, batch 1); figures are medians over them.
    max_iter : int
        The iteration budget of every method.
    seed : int >= 0
        Chooses the images: test samples ``seed * n`` to ``seed * n + n - 1``.
    reference_iter : int, optional
        Iterations of the reference run (default :data:`REFERENCE_ITER` by smoothness).
    progress : callable, optional
        Called with a line of text before every run.

    Returns
    -------
    list of dict
        Keys ``problem, method, in_distribution, applies, note, algorithm, n, max_iter,
        iterations_to_1e-3, seconds_to_1e-3, iterations_to_1e-6, seconds_to_1e-6,
        seconds_per_iteration, safeguard_rate, final_gap, reference, reference_margin,
        torch_threads`` (see the module docstring; null where not reached or not applicable).
    """
    for name, value, low in (("n", n, 1), ("max_iter", max_iter, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"benchmark_optimisers: {name} must be an int >= {low}, got {value!r}")
    if reference_iter is not None and (isinstance(reference_iter, bool)
                                       or not isinstance(reference_iter, int)
                                       or reference_iter < 1):
        raise ValueError(f"benchmark_optimisers: reference_iter must be a positive int or None, "
                         f"got {reference_iter!r}")
    probs = [_as_problem(p) for p in (_PROBLEMS.values() if problems is None else problems)]
    opts = [_as_optimiser(m) for m in (_OPTIMISERS.values() if methods is None else methods)]
    say = progress or (lambda msg: None)
    rows = []
    for prob in probs:
        rows += _benchmark_problem(prob, opts, n, max_iter, seed, reference_iter, say)
    return rows


def _benchmark_problem(prob: Problem, opts, n, max_iter, seed, reference_iter, say) -> list:
    op, y, fidelity, reg = prob.build(n, seed)
    expected = (n, 1) + tuple(op.range_shape)
    if tuple(y.shape) != expected:
        raise ValueError(f"problem {prob.name!r}: build({n}, {seed}) gave data of shape "
                         f"{tuple(y.shape)}, expected {expected}")
    op.norm()  # cached by the operator: no timed run pays the power iteration
    runs = {o.name: [] for o in opts if o.applies(reg)}
    best_ref, ref_text = [], ""
    for i in range(n):
        inst = Instance(prob.name, op, y[i:i + 1], fidelity, reg)
        say(f"{prob.name}: image {i + 1}/{n}, reference run")
        ref, ref_text = _reference(inst, reference_iter)
        best_ref.append(float(ref[0]))
        for o in opts:
            if o.name in runs:
                say(f"{prob.name}: image {i + 1}/{n}, {o.name}")
                runs[o.name].append(_timed(o, inst, max_iter))
    f_star = [min([best_ref[i]] + [float(r[i][0].min()) for r in runs.values() if r[i][0].size])
              for i in range(n)]
    scale = [max(abs(f), np.finfo(np.float64).tiny) for f in f_star]
    margin = None
    if runs:
        margin = float(np.median([(min(float(r[i][0].min()) for r in runs.values()) - best_ref[i])
                                  / scale[i] for i in range(n)]))
    rows = []
    for o in opts:
        row = {"problem": prob.name, "method": o.name, "in_distribution": prob.in_distribution,
               "applies": o.name in runs, "note": "", "algorithm": o.describe(reg), "n": n,
               "max_iter": max_iter}
        for target in TARGETS:
            row[f"iterations_to_{_key(target)}"] = row[f"seconds_to_{_key(target)}"] = None
        row.update(seconds_per_iteration=None, safeguard_rate=None, final_gap=None,
                   reference=ref_text, reference_margin=margin,
                   torch_threads=torch.get_num_threads())
        if o.name not in runs:
            row["note"] = f"does not apply to {prob.name} ({reg!r})"
            rows.append(row)
            continue
        _fill(row, runs[o.name], f_star, scale, max_iter)
        rows.append(row)
    return rows


def _fill(row: dict, runs: list, f_star: list, scale: list, max_iter: int) -> None:
    """The figures of one (problem, method) row from its per-image runs."""
    notes, finals, per_it, safeguards = [], [], [], []
    for target in TARGETS:
        its, secs = [], []
        for (hist, stamps, _), f, s in zip(runs, f_star, scale):
            k = _first((hist - f) / s, target)
            its.append(None if k is None else k + 1)
            secs.append(None if k is None else float(stamps[k]))
        row[f"iterations_to_{_key(target)}"] = _median(its)
        row[f"seconds_to_{_key(target)}"] = _median(secs)
        missed = sum(v is None for v in its)
        if missed:
            notes.append(f"{_key(target)} not reached by {missed} of {len(its)} images within "
                         f"{max_iter} iterations")
    early, reasons = [], []
    for (hist, stamps, result), f, s in zip(runs, f_star, scale):
        if hist.size:
            finals.append(float((hist[-1] - f) / s))
            per_it.append(float(stamps[-1]) / hist.size)
        if result.iterations < max_iter:
            early.append(str(result.iterations))
            reasons.append(result.message.split(": ", 1)[-1])
        rate = getattr(result, "safeguard_rate", None)
        safeguards.append(None if rate is None else float(rate))
    if early:
        notes.append(f"stopped early after {', '.join(early)} iterations: "
                     + "; ".join(dict.fromkeys(reasons)))
    row["final_gap"] = float(np.median(finals)) if finals else None
    row["seconds_per_iteration"] = float(np.median(per_it)) if per_it else None
    row["safeguard_rate"] = _median(safeguards) if any(v is not None for v in safeguards) else None
    row["note"] = "; ".join(dict.fromkeys(notes))


def _cell(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_optimisers_table(rows: List[dict]) -> str:
    """Plain-text table of :func:`benchmark_optimisers` rows (one line per problem and method)."""
    head = (f"{'problem':<24}{'method':<8}{'it 1e-3':>9}{'s 1e-3':>9}{'it 1e-6':>9}"
            f"{'s 1e-6':>9}{'ms/it':>8}{'final gap':>11}{'guard':>7}  note")
    lines = [head, "-" * len(head)]
    for r in rows:
        ms = None if r["seconds_per_iteration"] is None else 1e3 * r["seconds_per_iteration"]
        lines.append(f"{r['problem'] + ('' if r['in_distribution'] else '*'):<24}"
                     f"{r['method']:<8}{_cell(r['iterations_to_1e-3'], '.0f'):>9}"
                     f"{_cell(r['seconds_to_1e-3'], '.2f'):>9}"
                     f"{_cell(r['iterations_to_1e-6'], '.0f'):>9}"
                     f"{_cell(r['seconds_to_1e-6'], '.2f'):>9}{_cell(ms, '.2f'):>8}"
                     f"{_cell(r['final_gap'], '.1e'):>11}{_cell(r['safeguard_rate'], '.2f'):>7}"
                     f"  {'n/a' if not r['applies'] else r['note']}")
    if rows:
        refs = {r["problem"]: (r["reference"], r["reference_margin"]) for r in rows}
        lines.append("it / s 1e-3, 1e-6: iterations and seconds to a relative objective gap "
                     f"(median of {rows[0]['n']} images, one at a time; '-': not reached within "
                     f"{rows[0]['max_iter']} iterations or n/a); * out of distribution; torch "
                     f"threads {rows[0]['torch_threads']}")
        lines.append("reference minimum (reference run; its margin below the best method): "
                     + "; ".join(f"{p}: {ref}, {_cell(m, '.1e')}" for p, (ref, m) in refs.items()))
    return "\n".join(lines)
