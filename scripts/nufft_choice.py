"""Choose the NUFFT library for non-Cartesian MRI by measurement (issue 13).

Candidates (all from PyPI): finufft (C++ with Python bindings; CPU, cufinufft on GPU),
torchkbnufft (pure torch: table or sparse-matrix Kaiser-Bessel interpolation; CPU and CUDA),
mri-nufft (a wrapper whose CPU backends include finufft and torchkbnufft; timed here with its
finufft backend) and, for reference, sigpy's NUFFT (already a test dependency of tomolearn).

Two measurements, printed as one table:

* accuracy, on a small case where the exact non-uniform DFT (a dense matrix) is affordable:
  relative L2 error of the forward (type 2) and of the adjoint (type 1) against the NDFT
  ``y_j = sum_n x[n] exp(-i k_j . (n - N // 2))`` of
  :mod:`tomolearn.modalities.mri.trajectories`, and the dot-product (adjointness) error
  ``|<A x, y> - <x, A^H y>| / (||A x|| ||y||)`` in complex128 and complex64.  A library with
  another normalisation (mri-nufft divides by a constant) is compared after the best complex
  scalar, which is printed;
* speed, on a 160 x 160 image, 8 coils, golden-angle radial 160 spokes x 320 readout points:
  median wall time of the forward and of the adjoint of the 8 coil images over ``--repeats``
  runs, the candidates interleaved round-robin so that load on a shared machine hits them
  alike, plus the one-off setup (plans, tables, sparse matrices).

Usage::

    OMP_NUM_THREADS=1 python scripts/nufft_choice.py [--threads 1] [--repeats 9]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings


def _parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1, help="threads for every library")
    p.add_argument("--repeats", type=int, default=9, help="timed runs per candidate")
    p.add_argument("--size", type=int, default=160, help="image side of the speed case")
    p.add_argument("--coils", type=int, default=8)
    p.add_argument("--spokes", type=int, default=160)
    p.add_argument("--readout", type=int, default=320)
    return p.parse_args()


ARGS = _parse() if __name__ == "__main__" else None
if ARGS is not None:  # thread counts must be fixed before the libraries load
    for var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tomolearn.modalities.mri.trajectories import radial_trajectory  # noqa: E402

warnings.simplefilter("ignore")
EPS = 1e-6  # finufft's requested relative accuracy


# -- candidates: build(traj (M, 2) radians, shape, n_coils, dtype) -> (forward, adjoint) -----
# forward: complex numpy (n_coils, H, W) -> (n_coils, M); adjoint the other way.

def finufft_plan(traj, shape, n_coils, dtype, threads, eps=EPS):
    import finufft
    plan = finufft.Plan(2, shape, n_coils, eps=eps, isign=-1, dtype=np.dtype(dtype).name,
                        nthreads=threads)
    real = np.float32 if dtype == np.complex64 else np.float64
    plan.setpts(*(np.ascontiguousarray(traj[:, i], dtype=real) for i in range(2)))
    return plan.execute, plan.execute_adjoint


def finufft_plan_1e3(traj, shape, n_coils, dtype, threads):
    return finufft_plan(traj, shape, n_coils, dtype, threads, eps=1e-3)


def finufft_simple(traj, shape, n_coils, dtype, threads):
    import finufft
    real = np.float32 if dtype == np.complex64 else np.float64
    kr, kc = (np.ascontiguousarray(traj[:, i], dtype=real) for i in range(2))
    fwd = lambda x: finufft.nufft2d2(kr, kc, x, eps=EPS, isign=-1, nthreads=threads)  # noqa: E731
    adj = lambda y: finufft.nufft2d1(kr, kc, y, shape, eps=EPS, isign=1,  # noqa: E731
                                     nthreads=threads)
    return fwd, adj


def _tkbn(traj, shape, n_coils, dtype, threads, sparse=False, **kw):
    import torchkbnufft as tkbn
    torch.set_num_threads(threads)
    tdt = torch.complex64 if dtype == np.complex64 else torch.complex128
    rdt = tdt.to_real()
    fo = tkbn.KbNufft(shape, dtype=tdt, **kw)
    ad = tkbn.KbNufftAdjoint(shape, dtype=tdt, **kw)
    omega = torch.from_numpy(np.ascontiguousarray(traj.T)).to(rdt)
    mats = tkbn.calc_tensor_spmatrix(omega, shape, **kw) if sparse else None
    if mats is not None:
        mats = tuple(m.to(rdt) for m in mats)
    kwm = {"interp_mats": mats} if sparse else {}

    def fwd(x):
        with torch.no_grad():
            return fo(torch.from_numpy(x)[None], omega, **kwm)[0].numpy()

    def adj(y):
        with torch.no_grad():
            return ad(torch.from_numpy(y)[None], omega, **kwm)[0].numpy()
    return fwd, adj


def tkbn_table(traj, shape, n_coils, dtype, threads):
    return _tkbn(traj, shape, n_coils, dtype, threads)


def tkbn_table_fine(traj, shape, n_coils, dtype, threads):
    return _tkbn(traj, shape, n_coils, dtype, threads, numpoints=8, table_oversamp=2 ** 14)


def tkbn_sparse(traj, shape, n_coils, dtype, threads):
    return _tkbn(traj, shape, n_coils, dtype, threads, sparse=True)


def mrinufft_finufft(traj, shape, n_coils, dtype, threads):
    from mrinufft import get_operator
    real = np.float32 if dtype == np.complex64 else np.float64
    op = get_operator("finufft")(traj.astype(real), shape, n_coils=n_coils, density=False,
                                 squeeze_dims=True, eps=EPS, nthreads=threads)
    return (lambda x: np.asarray(op.op(x)).reshape(n_coils, -1),
            lambda y: np.asarray(op.adj_op(y)).reshape((n_coils,) + tuple(shape)))


def sigpy_nufft(traj, shape, n_coils, dtype, threads):
    import sigpy
    coord = traj * (np.array(shape) / (2 * np.pi))
    coord = coord.astype(np.float32 if dtype == np.complex64 else np.float64)
    return (lambda x: sigpy.nufft(x, coord),
            lambda y: sigpy.nufft_adjoint(y, coord, (y.shape[0],) + tuple(shape)))


CANDIDATES = {
    "finufft Plan, eps=1e-6 (execute / execute_adjoint)": finufft_plan,
    "finufft Plan, eps=1e-3 (~ torchkbnufft default accuracy)": finufft_plan_1e3,
    "finufft simple nufft2d2 / nufft2d1, eps=1e-6": finufft_simple,
    "torchkbnufft table (default: 6 pts, 2^10 table)": tkbn_table,
    "torchkbnufft table (8 pts, 2^14 table)": tkbn_table_fine,
    "torchkbnufft sparse matrix (6 pts)": tkbn_sparse,
    "mri-nufft, finufft backend, eps=1e-6": mrinufft_finufft,
    "sigpy nufft (defaults: 1.25x, width 4)": sigpy_nufft,
}


def _ndft_matrix(traj, shape):
    h, w = shape
    n = np.stack(np.meshgrid(np.arange(h) - h // 2, np.arange(w) - w // 2, indexing="ij"), -1)
    return np.exp(-1j * (traj[:, None, None, :] * n[None]).sum(-1)).reshape(len(traj), -1)


def _crandn(rng, shape, dtype=np.complex128):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def accuracy(build, threads, size=40, spokes=40, readout=80):
    """Forward / adjoint relative error vs the NDFT, fitted scale, and dot-test errors."""
    shape = (size, size)
    traj = radial_trajectory(spokes, readout).reshape(-1, 2).numpy()
    e = _ndft_matrix(traj, shape)
    rng = np.random.default_rng(0)
    x, y = _crandn(rng, (1,) + shape), _crandn(rng, (1, len(traj)))
    fwd, adj = build(traj, shape, 1, np.complex128, threads)
    ax, ex = fwd(x).reshape(-1), e @ x.reshape(-1)
    scale = np.vdot(ax, ex) / np.vdot(ax, ax)  # 1 for libraries with this convention
    err_f = np.linalg.norm(scale * ax - ex) / np.linalg.norm(ex)
    ahy, ehy = adj(y).reshape(-1), e.conj().T @ y.reshape(-1)
    err_a = np.linalg.norm(np.conj(scale) * ahy - ehy) / np.linalg.norm(ehy)
    dots = []
    for dt in (np.complex128, np.complex64):
        f, a = build(traj, shape, 1, dt, threads)
        xs, ys = x.astype(dt), y.astype(dt)
        fx, ay = f(xs).astype(np.complex128), a(ys).astype(np.complex128)
        lhs, rhs = np.vdot(fx.reshape(-1), y.reshape(-1)), np.vdot(x.reshape(-1), ay.reshape(-1))
        dots.append(abs(lhs - rhs) / (np.linalg.norm(fx) * np.linalg.norm(y)))
    return err_f, err_a, scale, dots


def speed(args, dtype):
    """Median forward / adjoint ms per candidate, interleaved round-robin, plus setup ms."""
    shape = (args.size, args.size)
    traj = radial_trajectory(args.spokes, args.readout).reshape(-1, 2).numpy()
    rng = np.random.default_rng(1)
    x = _crandn(rng, (args.coils,) + shape, dtype)
    y = _crandn(rng, (args.coils, len(traj)), dtype)
    ops, setup = {}, {}
    for name, build in CANDIDATES.items():
        t0 = time.perf_counter()
        ops[name] = build(traj, shape, args.coils, dtype, args.threads)
        setup[name] = 1e3 * (time.perf_counter() - t0)
        ops[name][0](x), ops[name][1](y)  # warm-up (compilation, caches)
    times = {name: ([], []) for name in ops}
    for _ in range(args.repeats):
        for name, (fwd, adj) in ops.items():
            for i, (f, v) in enumerate(((fwd, x), (adj, y))):
                t0 = time.perf_counter()
                f(v)
                times[name][i].append(1e3 * (time.perf_counter() - t0))
    return {n: (setup[n], float(np.median(t[0])), float(np.median(t[1])))
            for n, t in times.items()}


def main(args):
    import finufft
    import sigpy
    import torchkbnufft
    from importlib.metadata import version
    print(f"versions: finufft {finufft.__version__}, torchkbnufft {torchkbnufft.__version__}, "
          f"mri-nufft {version('mri-nufft')}, sigpy {sigpy.__version__}, torch {torch.__version__}")
    print(f"threads per library: {args.threads}; timing: median of {args.repeats}, candidates "
          f"interleaved; accuracy case 40x40, radial 40 x 80 vs the exact NDFT (complex128)")
    print(f"speed case: {args.size}x{args.size}, {args.coils} coils, golden-angle radial "
          f"{args.spokes} spokes x {args.readout} readout = {args.spokes * args.readout} samples")
    acc = {name: accuracy(build, args.threads) for name, build in CANDIDATES.items()}
    sp = {dt: speed(args, dt) for dt in (np.complex64, np.complex128)}
    head = (f"{'candidate':58s} {'fwd err':>8s} {'adj err':>8s} {'dot c128':>9s} {'dot c64':>8s} "
            f"| {'setup':>7s} {'fwd c64':>8s} {'adj c64':>8s} {'fwd c128':>8s} {'adj c128':>8s}")
    print()
    print(head + "   (errors relative; times in ms)")
    print("-" * len(head))
    for name in CANDIDATES:
        ef, ea, scale, (d128, d64) = acc[name]
        s64, s128 = sp[np.complex64][name], sp[np.complex128][name]
        print(f"{name:58s} {ef:8.1e} {ea:8.1e} {d128:9.1e} {d64:8.1e} | {s64[0]:7.1f} "
              f"{s64[1]:8.1f} {s64[2]:8.1f} {s128[1]:8.1f} {s128[2]:8.1f}"
              + ("" if abs(scale - 1) < 1e-3 else f"   (scale {abs(scale):.4g} fitted)"))
    ref = "finufft Plan, eps=1e-6 (execute / execute_adjoint)"
    print()
    print("ratios to the finufft Plan (complex64 forward / adjoint), same process:")
    for name in CANDIDATES:
        r = sp[np.complex64]
        print(f"  {name:58s} {r[name][1] / r[ref][1]:6.2f}x {r[name][2] / r[ref][2]:6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
