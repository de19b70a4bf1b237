"""2-D computed tomography: geometries, the ray transform and FBP.

Conventions (those of ASTRA's 2-D ``parallel`` and ``fanflat`` geometries):

* The image is an array ``(H, W)``; row 0 is the top.  The centre of pixel
  ``(i, j)`` lies at ``x = (j - (W-1)/2) * pixel_size``,
  ``y = ((H-1)/2 - i) * pixel_size``, so the image is centred on the rotation
  axis.
* At angle ``theta`` (radians) the detector axis is ``u = (cos theta, sin theta)``.
  Detector bin ``k`` has centre ``(k - (n_detectors-1)/2) * detector_spacing +
  detector_offset`` along ``u``.
* Parallel beam: rays travel along ``(sin theta, -cos theta)``; a point ``p``
  projects onto detector coordinate ``p . u``.
* Fan beam (flat detector): the source sits at ``source_radius *
  (sin theta, -cos theta)`` and the detector centre at ``detector_radius *
  (-sin theta, cos theta)``.
* Line integrals are in physical units (pixel_size and detector_spacing are in
  the same length unit; 1 by default).

The discretisation is Joseph's method [1]_: each ray is sampled once per
image column (or row, whichever axis it is closer to parallel with) and the
image is linearly interpolated between the two neighbouring pixels of that
column (row); the sample is weighted with the ray length per column (row).
This is the model of ASTRA's ``linear`` projector [2]_.

References
----------
.. [1] P. M. Joseph, "An improved algorithm for reprojecting rays through
       pixel images", IEEE Trans. Med. Imaging 1(3), 192-196, 1982.
.. [2] W. van Aarle et al., "Fast and flexible X-ray tomography using the
       ASTRA toolbox", Optics Express 24(22), 25129-25147, 2016.
.. [3] A. C. Kak and M. Slaney, "Principles of Computerized Tomographic
       Imaging", IEEE Press, 1988, chapter 3.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch

from .files import atomic_write_bytes
from .operators import LinearOperator, register_example

# torch marks its (well-tested) CSR support as beta on every construction; say it once here.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

__all__ = ["ParallelBeam2D", "FanBeam2D", "RayTransform", "fbp", "FILTERS"]

#: Version of the matrix builder; part of the cache key.
_BUILDER_VERSION = 1

#: Above this many estimated stored non-zeros, ``backend="auto"`` is matrix-free
#: (the sparse backend keeps the matrix and its transpose, 8 bytes per entry
#: each in float32: 2 GB at this size).
SPARSE_MAX_NNZ = 130_000_000

#: Largest stored matrix whose weights are kept in float64.
_FLOAT64_MAX_NNZ = 20_000_000

#: Bytes of per-chunk working memory the matrix-free path aims for.
_CHUNK_BYTES = 96 * 2**20


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return int(value)


def _positive_float(value, name):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be positive and finite, got {value}")
    return value


def _finite_float(value, name):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _angles(n_angles, angles, arc) -> Tuple[float, ...]:
    """Explicit angles, or ``n_angles`` midpoints of a uniform partition of [0, arc)."""
    if angles is None:
        if n_angles is None:
            raise ValueError("give n_angles or an explicit angles array")
        n = _positive_int(n_angles, "n_angles")
        return tuple(float(a) for a in (np.arange(n) + 0.5) * (arc / n))
    arr = np.asarray(angles, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"angles must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("angles must all be finite (radians)")
    if n_angles is not None and _positive_int(n_angles, "n_angles") != arr.size:
        raise ValueError(f"n_angles={n_angles} but {arr.size} angles were given")
    return tuple(float(a) for a in arr)


@dataclass(frozen=True)
class _Geometry2D:
    angles: Tuple[float, ...]
    n_detectors: int
    detector_spacing: float = 1.0
    detector_offset: float = 0.0

    @property
    def n_angles(self) -> int:
        return len(self.angles)

    def detector_positions(self) -> np.ndarray:
        """Centres of the detector bins along ``u``, shape (n_detectors,)."""
        k = np.arange(self.n_detectors) - (self.n_detectors - 1) / 2
        return k * self.detector_spacing + self.detector_offset

    def with_angles(self, angles) -> "_Geometry2D":
        """The same geometry with other angles (radians)."""
        d = self.spec()
        del d["type"]
        d["angles"] = np.asarray(angles, dtype=np.float64)
        return type(self)(**d)

    def spec(self) -> dict:
        """JSON-serialisable description (stored with caches, datasets and models)."""
        d = {"type": type(self).__name__}
        for f in self.__dataclass_fields__:
            v = getattr(self, f)
            d[f] = list(v) if isinstance(v, tuple) else v
        return d


@dataclass(frozen=True, init=False)
class ParallelBeam2D(_Geometry2D):
    """2-D parallel-beam geometry (ASTRA ``parallel``).

    Parameters
    ----------
    n_angles : int, optional
        Number of projection angles; without ``angles`` they are the midpoints
        ``(i + 0.5) * pi / n_angles`` of a uniform partition of [0, pi), as in
        ODL's ``parallel_beam_geometry`` (and hence DIVal).
    n_detectors : int
        Number of detector bins.
    detector_spacing : float
        Bin width, in the image's length unit (pixel_size units).
    angles : array_like, optional
        Explicit angles in radians (sparse view, limited angle, full 2 pi, ...).
    detector_offset : float
        Shift of the detector centre along ``u``, same unit as the spacing.
    """

    def __init__(self, n_angles=None, n_detectors=None, detector_spacing=1.0, angles=None,
                 detector_offset=0.0):
        if n_detectors is None:
            raise ValueError("n_detectors is required")
        object.__setattr__(self, "angles", _angles(n_angles, angles, math.pi))
        object.__setattr__(self, "n_detectors", _positive_int(n_detectors, "n_detectors"))
        object.__setattr__(self, "detector_spacing",
                           _positive_float(detector_spacing, "detector_spacing"))
        object.__setattr__(self, "detector_offset", _finite_float(detector_offset, "detector_offset"))

    def rays(self, angle_index: np.ndarray):
        """Ray points and directions, each (len(angle_index), n_detectors, 2)."""
        th = np.asarray(self.angles)[angle_index]
        u = np.stack([np.cos(th), np.sin(th)], -1)[:, None, :]
        d = np.stack([np.sin(th), -np.cos(th)], -1)[:, None, :]
        t = self.detector_positions()[None, :, None]
        p = t * u
        return p, np.broadcast_to(d, p.shape)


@dataclass(frozen=True, init=False)
class FanBeam2D(_Geometry2D):
    """2-D fan-beam geometry with a flat detector (ASTRA ``fanflat``).

    Parameters
    ----------
    n_angles : int, optional
        Number of source positions; without ``angles`` they are the midpoints
        of a uniform partition of [0, 2 pi).
    n_detectors : int
        Number of detector bins.
    source_radius : float
        Distance from the source to the rotation centre.
    detector_radius : float
        Distance from the rotation centre to the detector (the detector is
        not scaled to the centre: its bins have width ``detector_spacing``).
    detector_spacing, angles, detector_offset
        As for :class:`ParallelBeam2D`.
    """

    source_radius: float = 1.0
    detector_radius: float = 1.0

    def __init__(self, n_angles=None, n_detectors=None, source_radius=None, detector_radius=None,
                 detector_spacing=1.0, angles=None, detector_offset=0.0):
        if n_detectors is None or source_radius is None or detector_radius is None:
            raise ValueError("n_detectors, source_radius and detector_radius are required")
        object.__setattr__(self, "angles", _angles(n_angles, angles, 2 * math.pi))
        object.__setattr__(self, "n_detectors", _positive_int(n_detectors, "n_detectors"))
        object.__setattr__(self, "detector_spacing",
                           _positive_float(detector_spacing, "detector_spacing"))
        object.__setattr__(self, "detector_offset", _finite_float(detector_offset, "detector_offset"))
        object.__setattr__(self, "source_radius", _positive_float(source_radius, "source_radius"))
        object.__setattr__(self, "detector_radius",
                           _positive_float(detector_radius, "detector_radius"))

    def rays(self, angle_index: np.ndarray):
        """Ray points (the source) and directions (source to bin), each (A, n_detectors, 2)."""
        th = np.asarray(self.angles)[angle_index]
        s, c = np.sin(th), np.cos(th)
        src = self.source_radius * np.stack([s, -c], -1)[:, None, :]
        centre = self.detector_radius * np.stack([-s, c], -1)[:, None, :]
        u = np.stack([c, s], -1)[:, None, :]
        det = centre + self.detector_positions()[None, :, None] * u
        return np.broadcast_to(src, det.shape), det - src


# --------------------------------------------------------------------------
# Joseph's method
# --------------------------------------------------------------------------
def _joseph_samples(p: torch.Tensor, d: torch.Tensor, shape, pixel_size: float, dtype):
    """Joseph samples of the rays ``p + s d`` through an image of ``shape``.

    Each ray is sampled at every column it crosses when it is closer to
    parallel with the x axis (otherwise at every row), and the image is
    linearly interpolated between the two pixels of that column (row) that
    enclose the sample; the sample is weighted with the ray length per
    column (row).

    Indices refer to the image zero-padded to ``(H + 3, W + 3)`` (one pad
    row/column before, two after), with pixel ``(i, j)`` at flat index
    ``(i + 1) * (W + 3) + j + 1``.  Samples outside the image are clamped
    onto the pad, where they read and write zeros, so no masks are needed.

    Parameters
    ----------
    p, d : torch.Tensor, shape (R, 2), float64
        A point on each ray and its direction, physical (x, y) coordinates.
    shape : (H, W)
    pixel_size : float
    dtype : torch.dtype
        Of the returned weights (positions are computed in float64).

    Returns
    -------
    list of (rays, index0, index1, w0, w1)
        One entry per stepping axis present: ``rays`` (LongTensor (R_g,))
        are the positions of the group's rays in the input, ``index0`` and
        ``index1`` (LongTensor (R_g, S)) the padded flat indices of the two
        interpolated pixels of each of the ``S`` samples, ``w0`` and ``w1``
        (R_g, S) their weights.
    """
    H, W = shape
    Wp = W + 3
    # Continuous index coordinates: column u = x/ps + (W-1)/2, row v = (H-1)/2 - y/ps.
    pu = p[:, 0] / pixel_size + (W - 1) / 2
    pv = (H - 1) / 2 - p[:, 1] / pixel_size
    du, dv = d[:, 0], -d[:, 1]
    over_cols = du.abs() >= dv.abs()
    groups = []
    for cols in (True, False):
        rays = torch.nonzero(over_cols if cols else ~over_cols).reshape(-1)
        if rays.numel() == 0:
            continue
        # Step along axis a (columns or rows), interpolate across axis b.
        pa, pb = (pu[rays], pv[rays]) if cols else (pv[rays], pu[rays])
        da, db = (du[rays], dv[rays]) if cols else (dv[rays], du[rays])
        n_a, n_b = (W, H) if cols else (H, W)
        length = pixel_size * torch.sqrt(da * da + db * db) / da.abs()
        a = torch.arange(n_a, device=p.device, dtype=p.dtype)
        slope = db / da
        b = (pb - pa * slope)[:, None] + a[None, :] * slope[:, None]
        b.clamp_(-1, n_b)  # beyond the image: onto the pad
        b0 = torch.floor(b)
        w1 = ((b - b0) * length[:, None]).to(dtype)
        w0 = length[:, None].to(dtype) - w1
        b0 = b0.long() + 1
        a_pad = torch.arange(1, n_a + 1, device=p.device)[None, :]
        if cols:
            index0 = b0 * Wp + a_pad
            index1 = index0 + Wp
        else:
            index0 = a_pad * Wp + b0
            index1 = index0 + 1
        groups.append((rays, index0, index1, w0, w1))
    return groups


def _pad(images: torch.Tensor) -> torch.Tensor:
    """(N, H, W) -> (N, H + 3, W + 3), the zero padding of :func:`_joseph_samples`."""
    return torch.nn.functional.pad(images, (1, 2, 1, 2))


def _spec_hash(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]


class RayTransform(LinearOperator):
    """The discrete 2-D ray (Radon / X-ray) transform, Joseph's method.

    Maps images ``(B, C, H, W)`` to sinograms ``(B, C, n_angles,
    n_detectors)``; the adjoint is its exact transpose.

    Parameters
    ----------
    geometry : ParallelBeam2D or FanBeam2D
    image_shape : (int, int)
        ``(H, W)``; non-square allowed.
    pixel_size : float
        Pixel side length in the geometry's length unit.
    backend : {"auto", "sparse", "matrix_free"}
        ``"sparse"`` precomputes the system matrix (fastest on CPU for
        moderate sizes); ``"matrix_free"`` recomputes the Joseph samples per
        block of angles (any size in bounded memory, CPU or CUDA).  ``"auto"``
        picks sparse when the estimated number of non-zeros is at most
        :data:`SPARSE_MAX_NNZ`.
    cache_dir : str or Path, optional
        Where to cache the sparse matrix (keyed by a hash of the geometry);
        defaults to the environment variable ``TOMOLEARN_CACHE_DIR`` if set,
        else no disk cache.
    """

    supports_complex = True

    def __init__(self, geometry, image_shape=(128, 128), pixel_size: float = 1.0,
                 backend: str = "auto", cache_dir=None):
        if not isinstance(geometry, (ParallelBeam2D, FanBeam2D)):
            raise TypeError(
                f"geometry must be a ParallelBeam2D or FanBeam2D, got {type(geometry).__name__}"
            )
        if not isinstance(image_shape, (tuple, list)) or len(image_shape) != 2:
            raise ValueError(f"image_shape must be (H, W), got {image_shape!r}")
        H = _positive_int(image_shape[0], "image_shape[0]")
        W = _positive_int(image_shape[1], "image_shape[1]")
        pixel_size = _positive_float(pixel_size, "pixel_size")
        if isinstance(geometry, FanBeam2D):
            half_diag = 0.5 * pixel_size * math.hypot(H, W)
            if geometry.source_radius <= half_diag:
                raise ValueError(
                    f"the source must lie outside the image: source_radius="
                    f"{geometry.source_radius} <= image half-diagonal {half_diag:.4g}"
                )
        super().__init__((H, W), (geometry.n_angles, geometry.n_detectors))
        self.geometry = geometry
        self.pixel_size = pixel_size
        if backend not in ("auto", "sparse", "matrix_free"):
            raise ValueError(f"backend must be 'auto', 'sparse' or 'matrix_free', got {backend!r}")
        self._symmetry_cache = None
        if backend == "auto":
            backend = "sparse" if self.estimated_nnz() <= SPARSE_MAX_NNZ else "matrix_free"
        self.backend = backend
        if cache_dir is None and os.environ.get("TOMOLEARN_CACHE_DIR"):
            cache_dir = os.environ["TOMOLEARN_CACHE_DIR"]
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._matrices = {}  # (device, dtype) -> (A, A^T) sparse CSR of the base angles
        self._master = None  # (crow, col, val) numpy CSR, kept while small

    def angle_subset(self, indices) -> "RayTransform":
        """The ray transform restricted to the angles ``indices`` (for ordered subsets)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0 or idx.min() < 0 or idx.max() >= self.geometry.n_angles:
            raise ValueError(f"angle indices must lie in [0, {self.geometry.n_angles}), got {idx}")
        geometry = self.geometry.with_angles(np.asarray(self.geometry.angles)[idx])
        return RayTransform(geometry, self.domain_shape, self.pixel_size, backend=self.backend,
                            cache_dir=self.cache_dir)

    # -- description ----------------------------------------------------------
    def spec(self) -> dict:
        """Geometry, image shape and pixel size as a JSON-serialisable dict."""
        return {"geometry": self.geometry.spec(), "image_shape": list(self.domain_shape),
                "pixel_size": self.pixel_size}

    def extra_repr(self):
        g = self.geometry
        return (f"{type(g).__name__}, n_angles={g.n_angles}, n_detectors={g.n_detectors}, "
                f"image_shape={self.domain_shape}, pixel_size={self.pixel_size}, "
                f"backend={self.backend!r}")

    def estimated_nnz(self) -> int:
        """Rough number of non-zeros of the stored system matrix (two per in-image sample).

        With the quarter-turn symmetry (see :meth:`_symmetry`) only the base
        angles are stored.
        """
        H, W = self.domain_shape
        g = self.geometry
        mag = 1.0
        if isinstance(g, FanBeam2D):
            mag = (g.source_radius + g.detector_radius) / g.source_radius
        per_angle = H * W * 0.9 * mag * self.pixel_size / g.detector_spacing
        per_angle = min(per_angle, g.n_detectors * max(H, W))
        return int(2 * len(self._symmetry()[0]) * per_angle)

    def _symmetry(self):
        """Angles whose rows follow from others by a quarter turn of the image.

        For parallel beam on a square grid, the projection at ``theta + pi/2``
        of an image equals the projection at ``theta`` of the image rotated by
        a quarter turn (a pixel permutation), so only the ``base`` angles need
        a stored matrix.  Returns ``(base, rotated, partner)``: angle indices
        stored, angle indices derived, and for each derived angle the position
        of its partner within ``base`` (the partners are ``base[:len(rotated)]``).
        Angles at exactly 45 degrees (where Joseph's axis choice is a tie)
        are never paired.
        """
        if self._symmetry_cache is not None:
            return self._symmetry_cache
        g = self.geometry
        n = g.n_angles
        angles = np.mod(np.asarray(g.angles), 2 * math.pi)
        paired_base, rotated = [], []
        if isinstance(g, ParallelBeam2D) and self.domain_shape[0] == self.domain_shape[1]:
            used = np.zeros(n, dtype=bool)
            tie = np.isclose(np.abs(np.cos(angles)), np.abs(np.sin(angles)), rtol=0, atol=1e-9)
            for i in range(n):
                if used[i] or tie[i]:
                    continue
                target = np.mod(angles[i] + math.pi / 2, 2 * math.pi)
                dist = np.abs(np.mod(angles - target + math.pi, 2 * math.pi) - math.pi)
                dist[used | tie] = np.inf
                dist[i] = np.inf
                j = int(np.argmin(dist))
                if dist[j] < 1e-10:
                    used[i] = used[j] = True
                    paired_base.append(i)
                    rotated.append(j)
        rest = [i for i in range(n) if i not in set(paired_base) | set(rotated)]
        self._symmetry_cache = (np.array(paired_base + rest, dtype=np.int64),
                                np.array(rotated, dtype=np.int64))
        return self._symmetry_cache

    # -- Joseph samples for a block of angles ---------------------------------
    def _samples(self, angle_index, dtype, device):
        """:func:`_joseph_samples` of the rays of the angles ``angle_index`` (angle-major)."""
        p, d = self.geometry.rays(angle_index)
        p = torch.from_numpy(np.array(p, dtype=np.float64).reshape(-1, 2))
        d = torch.from_numpy(np.array(d, dtype=np.float64).reshape(-1, 2))
        return _joseph_samples(p.to(device), d.to(device), self.domain_shape, self.pixel_size, dtype)

    def _angle_blocks(self, n_channels: int, itemsize: int, angles=None):
        """Split ``angles`` (default all) into blocks that fit the working-memory budget."""
        angles = np.arange(self.geometry.n_angles) if angles is None else angles
        S = max(self.domain_shape)
        per_angle = self.geometry.n_detectors * S * (8 + 2 * 8 + 2 * n_channels * itemsize)
        size = max(1, min(len(angles), _CHUNK_BYTES // max(per_angle, 1)))
        for start in range(0, len(angles), size):
            yield angles[start:start + size]

    # -- sparse matrix --------------------------------------------------------
    def _build_matrix(self):
        """The stored system matrix (rows: the base angles) as CSR arrays.

        Returns ``crow`` (int64), ``col`` (int32) and ``val``, float64 for
        matrices up to :data:`_FLOAT64_MAX_NNZ` non-zeros and float32 above
        (the operator and its transpose stay exactly consistent either way;
        only the Joseph weights are rounded).  Built block by block.
        """
        val_dtype = np.float64 if self.estimated_nnz() <= _FLOAT64_MAX_NNZ else np.float32
        base, _ = self._symmetry()
        n_det = self.geometry.n_detectors
        npix = math.prod(self.domain_shape)
        crows, cols, vals = [np.zeros(1, dtype=np.int64)], [], []
        offset = 0
        H, W = self.domain_shape
        for block in self._angle_blocks(1, 8, base):
            ray_ids, pixel_ids, weights = [], [], []
            for rays, index0, index1, w0, w1 in self._samples(block, torch.float64, "cpu"):
                for index, w in ((index0, w0), (index1, w1)):
                    i, j = index // (W + 3) - 1, index % (W + 3) - 1
                    keep = (w != 0) & (i >= 0) & (i < H) & (j >= 0) & (j < W)
                    ray_ids.append(rays[:, None].expand_as(index)[keep])
                    pixel_ids.append((i * W + j)[keep])
                    weights.append(w[keep])
            n_rays = len(block) * n_det
            coo = torch.sparse_coo_tensor(torch.stack([torch.cat(ray_ids), torch.cat(pixel_ids)]),
                                          torch.cat(weights), (n_rays, npix), check_invariants=False)
            csr = coo.coalesce().to_sparse_csr()
            crows.append(csr.crow_indices()[1:].numpy() + offset)
            cols.append(csr.col_indices().numpy().astype(np.int32))
            vals.append(csr.values().numpy().astype(val_dtype, copy=False))
            offset += vals[-1].size
            del ray_ids, pixel_ids, weights, coo, csr
        assert offset == sum(v.size for v in vals) and len(base) * n_det + 1 == sum(c.size for c in crows)
        return np.concatenate(crows), np.concatenate(cols), np.concatenate(vals)

    def _cache_path(self) -> Optional[Path]:
        if self.cache_dir is None:
            return None
        key = _spec_hash({"spec": self.spec(), "builder": _BUILDER_VERSION})
        return self.cache_dir / f"raytransform-{key}.npz"

    def _load_cached(self, path: Path):
        try:
            with np.load(path, allow_pickle=False) as f:
                header = json.loads(bytes(f["header"]).decode())
                crow, col, val = f["crow"], f["col"], f["val"]
        except Exception as e:  # unreadable, truncated, not an npz
            warnings.warn(f"ignoring corrupt ray-transform cache {path} ({e}); rebuilding")
            return None
        expected = {"spec": self.spec(), "builder": _BUILDER_VERSION}
        if header.get("key") != expected:
            warnings.warn(f"ray-transform cache {path} belongs to another geometry; rebuilding")
            return None
        if header.get("sha256") != _arrays_digest(crow, col, val):
            warnings.warn(f"ray-transform cache {path} fails its checksum; rebuilding")
            return None
        m = len(self._symmetry()[0]) * self.geometry.n_detectors
        n = math.prod(self.domain_shape)
        if crow.shape != (m + 1,) or col.shape != val.shape or (col.size and col.max() >= n):
            warnings.warn(f"ray-transform cache {path} has inconsistent arrays; rebuilding")
            return None
        return crow, col, val

    def _master_matrix(self):
        if self._master is not None:
            return self._master
        path = self._cache_path()
        arrays = self._load_cached(path) if path is not None and path.exists() else None
        if arrays is None:
            arrays = self._build_matrix()
            if path is not None:
                header = {"key": {"spec": self.spec(), "builder": _BUILDER_VERSION},
                          "sha256": _arrays_digest(*arrays)}
                buf = io.BytesIO()
                np.savez(buf, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
                         crow=arrays[0], col=arrays[1], val=arrays[2])
                atomic_write_bytes(path, buf.getvalue())
                del buf
        return arrays

    def _matrix(self, dtype, device):
        """Stored matrix and its transpose as sparse CSR tensors of ``dtype`` on ``device``."""
        key = (str(device), dtype)
        if key not in self._matrices:
            crow, col, val = self._master_matrix()
            # Keep the master only while it is small; large ones are rebuilt on demand.
            self._master = (crow, col, val) if val.size <= _FLOAT64_MAX_NNZ else None
            m, n = crow.size - 1, math.prod(self.domain_shape)
            crow_t, col_t, val_t = _transpose_csr(crow, col, val, n)
            tensors = []
            for (r, c, v), shape in (((crow, col, val), (m, n)), ((crow_t, col_t, val_t), (n, m))):
                tensors.append(torch.sparse_csr_tensor(
                    torch.from_numpy(r.astype(np.int32)), torch.from_numpy(c),
                    torch.from_numpy(v).to(dtype), shape, check_invariants=False).to(device))
            self._matrices[key] = tuple(tensors)
        return self._matrices[key]

    # -- application ----------------------------------------------------------
    def _forward(self, x):
        if x.is_complex():
            return torch.complex(self._forward(x.real.contiguous()), self._forward(x.imag.contiguous()))
        b, c = x.shape[:2]
        flat = x.reshape((b * c,) + self.domain_shape)
        if self.backend == "matrix_free":
            out = self._forward_matrix_free(flat.reshape(b * c, -1))
        else:
            out = torch.cat([self._forward_sparse(part) for part in flat.split(self._group_size())])
        return out.reshape((b, c) + self.range_shape)

    def _adjoint(self, y):
        if y.is_complex():
            return torch.complex(self._adjoint(y.real.contiguous()), self._adjoint(y.imag.contiguous()))
        b, c = y.shape[:2]
        flat = y.reshape((b * c,) + self.range_shape)
        if self.backend == "matrix_free":
            out = self._adjoint_matrix_free(flat.reshape(b * c, -1))
        else:
            out = torch.cat([self._adjoint_sparse(part) for part in flat.split(self._group_size())])
        return out.reshape((b, c) + self.domain_shape)

    def _group_size(self) -> int:
        # The CSR product needs (pixels, images) column layouts; transposing many large images
        # at once thrashes the cache, so large batches go through in groups of about 1 M pixels.
        return max(1, 2**20 // math.prod(self.domain_shape))

    def _forward_sparse(self, images):
        """(N, H, W) -> (N, n_angles, n_detectors) with the stored matrix."""
        a, _ = self._matrix(images.dtype, images.device)
        base, rotated = self._symmetry()
        n, n_det = images.shape[0], self.geometry.n_detectors
        cols = images.reshape(n, -1)
        if len(rotated):
            cols = torch.cat([cols, torch.rot90(images, -1, (-2, -1)).reshape(n, -1)])
        z = torch.sparse.mm(a, cols.T.contiguous()).T.reshape(-1, len(base), n_det)
        out = images.new_empty((n, self.geometry.n_angles, n_det))
        out[:, torch.from_numpy(base)] = z[:n]
        if len(rotated):
            out[:, torch.from_numpy(rotated)] = z[n:, :len(rotated)]
        return out

    def _adjoint_sparse(self, sino):
        """(N, n_angles, n_detectors) -> (N, H, W), the exact transpose of :meth:`_forward_sparse`."""
        _, at = self._matrix(sino.dtype, sino.device)
        base, rotated = self._symmetry()
        n = sino.shape[0]
        cols = sino[:, torch.from_numpy(base)]
        if len(rotated):
            rot = torch.zeros_like(cols)
            rot[:, :len(rotated)] = sino[:, torch.from_numpy(rotated)]
            cols = torch.cat([cols, rot])
        z = torch.sparse.mm(at, cols.reshape(cols.shape[0], -1).T.contiguous()).T
        out = z[:n].reshape((n,) + self.domain_shape)
        if len(rotated):
            out = out + torch.rot90(z[n:].reshape((n,) + self.domain_shape), 1, (-2, -1))
        return out

    def _forward_matrix_free(self, flat):
        """Forward projection of ``flat`` (N, H*W), recomputing samples per block of angles."""
        H, W = self.domain_shape
        n_det = self.geometry.n_detectors
        # One row of N values per padded pixel, so each gather fetches all N images at once.
        img = _pad(flat.reshape(-1, H, W)).reshape(flat.shape[0], -1).T.contiguous()
        out = flat.new_empty(flat.shape[0], self.geometry.n_angles * n_det)
        for block in self._angle_blocks(flat.shape[0], flat.element_size()):
            rays_out = out[:, block[0] * n_det:(block[-1] + 1) * n_det]
            for rays, index0, index1, w0, w1 in self._samples(block, flat.dtype, flat.device):
                r, s = index0.shape
                v = img.index_select(0, index0.reshape(-1)).reshape(r, s, -1) * w0[..., None]
                v += img.index_select(0, index1.reshape(-1)).reshape(r, s, -1) * w1[..., None]
                rays_out[:, rays] = v.sum(1).T
        return out

    def _adjoint_matrix_free(self, flat):
        """Back-projection of ``flat`` (N, n_angles*n_detectors): the exact transpose."""
        H, W = self.domain_shape
        n_det = self.geometry.n_detectors
        img = flat.new_zeros((H + 3) * (W + 3), flat.shape[0])
        sino = flat.T  # (n_rays, N)
        for block in self._angle_blocks(flat.shape[0], flat.element_size()):
            rays_in = sino[block[0] * n_det:(block[-1] + 1) * n_det]
            for rays, index0, index1, w0, w1 in self._samples(block, flat.dtype, flat.device):
                r, s = index0.shape
                yb = rays_in[rays][:, None, :]  # (r, 1, N)
                img.index_add_(0, index0.reshape(-1), (yb * w0[..., None]).reshape(r * s, -1))
                img.index_add_(0, index1.reshape(-1), (yb * w1[..., None]).reshape(r * s, -1))
        img = img.T.reshape(-1, H + 3, W + 3)[:, 1:H + 1, 1:W + 1]
        return img.reshape(flat.shape[0], -1)


def _transpose_csr(crow, col, val, n_cols, block_nnz=4_000_000):
    """Transpose a CSR matrix (numpy arrays) in blocks of rows, in bounded extra memory.

    Returns ``(crow_t, col_t, val_t)`` of the ``(n_cols, n_rows)`` transpose,
    with sorted column indices in every row.
    """
    counts = np.bincount(col, minlength=n_cols)
    crow_t = np.zeros(n_cols + 1, dtype=np.int64)
    np.cumsum(counts, out=crow_t[1:])
    col_t = np.empty(col.size, dtype=np.int32)
    val_t = np.empty(val.size, dtype=val.dtype)
    fill = crow_t[:-1].copy()  # next free slot of every row of the transpose
    n_rows = crow.size - 1
    row = 0
    while row < n_rows:
        # Rows [row, stop) hold about block_nnz entries.
        stop = int(np.searchsorted(crow, crow[row] + block_nnz, side="right"))
        stop = min(max(stop - 1, row + 1), n_rows)
        e0, e1 = crow[row], crow[stop]
        if e1 == e0:  # rays that miss the image
            row = stop
            continue
        c = col[e0:e1]
        order = np.argsort(c, kind="stable")
        c_sorted = c[order]
        starts = np.flatnonzero(np.concatenate([[True], c_sorted[1:] != c_sorted[:-1]]))
        run_lengths = np.diff(np.concatenate([starts, [c_sorted.size]]))
        rank = np.arange(c_sorted.size) - np.repeat(starts, run_lengths)
        pos = fill[c_sorted] + rank
        rows = np.repeat(np.arange(row, stop, dtype=np.int32), np.diff(crow[row:stop + 1]))
        col_t[pos] = rows[order]
        val_t[pos] = val[e0:e1][order]
        fill[c_sorted[starts]] += run_lengths
        row = stop
    return crow_t, col_t, val_t


def _arrays_digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------
# Filtered back-projection
# --------------------------------------------------------------------------
def _window(name: str):
    """Apodisation windows as functions of frequency / (scaling * Nyquist), ODL's definitions."""
    return {
        "ramp": lambda f: np.ones_like(f),
        "ram-lak": lambda f: np.ones_like(f),
        "shepp-logan": lambda f: np.sinc(f / 2),
        "cosine": lambda f: np.cos(f * np.pi / 2),
        "hamming": lambda f: 0.54 + 0.46 * np.cos(f * np.pi),
        "hann": lambda f: np.cos(f * np.pi / 2) ** 2,
    }[name]


#: Names accepted by :func:`fbp`'s ``filter`` argument.
FILTERS = ("ramp", "ram-lak", "shepp-logan", "cosine", "hamming", "hann")


def ramp_filter(n_fft: int, spacing: float, filter: str = "ramp", frequency_scaling: float = 1.0):
    """Frequency response of the apodised ramp filter on an ``rfft`` grid.

    The ramp is the DFT of the band-limited spatial ramp kernel of Kak and
    Slaney [3]_ (eq. 61, chapter 3), which avoids the DC bias of sampling
    ``|nu|`` directly; it is multiplied by the window evaluated at
    ``|nu| / (frequency_scaling * nu_Nyquist)`` and set to zero above
    ``frequency_scaling * nu_Nyquist`` (ODL's convention).

    Returns
    -------
    numpy.ndarray, shape (n_fft // 2 + 1,)
        Multiply ``rfft(p, n_fft)`` by this and ``irfft`` to get ``p * h``
        in the continuous sense (units: 1 / spacing).
    """
    name = filter.lower()
    if name not in FILTERS:
        raise ValueError(f"unknown filter {filter!r}; expected one of {FILTERS}")
    frequency_scaling = _positive_float(frequency_scaling, "frequency_scaling")
    if frequency_scaling > 1:
        raise ValueError(f"frequency_scaling must be in (0, 1], got {frequency_scaling}")
    k = np.concatenate([np.arange(0, n_fft // 2 + 1), np.arange(-(n_fft - n_fft // 2 - 1), 0)])
    h = np.zeros(n_fft)
    h[0] = 1 / (4 * spacing**2)
    odd = k % 2 == 1
    h[odd] = -1 / (np.pi * k[odd] * spacing) ** 2
    response = np.fft.rfft(h).real * spacing
    f = np.arange(n_fft // 2 + 1) / (n_fft / 2)  # fraction of Nyquist
    window = _window(name)(f / frequency_scaling) * (f <= frequency_scaling)
    return response * window


def _angle_weights(angles: np.ndarray, period: float) -> np.ndarray:
    """Quadrature weights for angles folded onto [0, period): half the gap to each neighbour."""
    a = np.mod(angles, period)
    order = np.argsort(a)
    s = a[order]
    gaps = np.diff(np.concatenate([s, [s[0] + period]]))
    if len(s) == 1:
        gaps = np.array([period])
    w_sorted = 0.5 * (gaps + np.roll(gaps, 1))
    w = np.empty_like(w_sorted)
    w[order] = w_sorted
    return w


def fbp(op: RayTransform, sinogram: torch.Tensor, filter: str = "ramp",
        frequency_scaling: float = 1.0) -> torch.Tensor:
    """Filtered back-projection for parallel and (full-scan) flat fan beam.

    Parameters
    ----------
    op : RayTransform
        The operator whose data is inverted (geometry, image grid).
    sinogram : torch.Tensor, shape (B, C, n_angles, n_detectors)
        Line integrals in the geometry's length unit.
    filter : {"ramp", "ram-lak", "shepp-logan", "cosine", "hamming", "hann"}
        Apodisation window (definitions as ODL's ``fbp_op``).
    frequency_scaling : float in (0, 1]
        Relative cut-off: frequencies above ``frequency_scaling * Nyquist`` are
        removed and the window is stretched to end there.

    Returns
    -------
    torch.Tensor, shape (B, C, H, W)
        Attenuation values (inverse length unit), same dtype and device.

    Notes
    -----
    Parallel beam: ramp filter along the detector, pixel-driven linear
    interpolation back-projection, angles weighted by their spacing on
    [0, pi).  Fan beam: the flat-detector weighted FBP of [3]_ (section
    3.4.2): data rescaled to a virtual detector through the rotation centre,
    cosine pre-weighting, ramp filtering, and back-projection with the
    distance weight ``(R / (R - x . s))^2``; it needs angles covering the
    full circle (a short scan would need Parker weights, not implemented).
    """
    if not isinstance(op, RayTransform):
        raise TypeError(f"fbp needs a RayTransform, got {type(op).__name__}")
    op._check(sinogram, op.range_shape, "fbp")
    if sinogram.is_complex():
        raise TypeError("fbp expects a real sinogram")
    g = op.geometry
    H, W = op.domain_shape
    ps = op.pixel_size
    dtype, device = sinogram.dtype, sinogram.device
    B, C, n_ang, n_det = sinogram.shape
    angles = np.asarray(g.angles)
    u = g.detector_positions()

    if isinstance(g, FanBeam2D):
        R, D = g.source_radius, g.source_radius + g.detector_radius
        folded = np.sort(np.mod(angles, 2 * math.pi))
        largest_gap = np.max(np.diff(np.concatenate([folded, [folded[0] + 2 * math.pi]])))
        if largest_gap > 3 * 2 * math.pi / n_ang:
            raise ValueError(
                "fan-beam FBP needs angles covering the full circle [0, 2 pi); these leave a "
                f"gap of {math.degrees(largest_gap):.1f} degrees (short scans need Parker "
                "weights, which are not implemented)"
            )
        s = u * R / D  # virtual detector through the rotation centre
        spacing = g.detector_spacing * R / D
        pre = torch.as_tensor(R / np.sqrt(R**2 + s**2), dtype=dtype, device=device)
        data = sinogram * pre
        weights = 0.5 * _angle_weights(angles, 2 * math.pi)  # every ray is measured twice
    else:
        s, spacing, data = u, g.detector_spacing, sinogram
        weights = _angle_weights(angles, math.pi)
        if np.ptp(np.mod(angles, 2 * math.pi)) > math.pi + 1e-9 and n_ang > 1:
            weights = 0.5 * _angle_weights(angles, 2 * math.pi)

    n_fft = max(64, int(2 ** math.ceil(math.log2(2 * n_det))))
    response = torch.as_tensor(ramp_filter(n_fft, spacing, filter, frequency_scaling),
                               dtype=dtype, device=device)
    filtered = torch.fft.irfft(torch.fft.rfft(data, n=n_fft, dim=-1) * response, n=n_fft,
                               dim=-1)[..., :n_det]

    # Pixel-driven back-projection with linear interpolation on the detector.
    x = torch.as_tensor((np.arange(W) - (W - 1) / 2) * ps, dtype=torch.float64, device=device)
    y = torch.as_tensor(((H - 1) / 2 - np.arange(H)) * ps, dtype=torch.float64, device=device)
    X, Y = x[None, :].expand(H, W).reshape(-1), y[:, None].expand(H, W).reshape(-1)
    q = filtered.reshape(B * C, n_ang, n_det)
    q = torch.nn.functional.pad(q, (1, 1))  # zero outside the detector
    out = torch.zeros(B * C, H * W, dtype=dtype, device=device)
    block = max(1, min(n_ang, (32 * 2**20) // max(1, H * W * (B * C + 4) * 8)))
    s0, ds = float(s[0]), float(s[1] - s[0]) if n_det > 1 else 1.0
    for start in range(0, n_ang, block):
        idx = slice(start, min(start + block, n_ang))
        th = torch.as_tensor(angles[idx], dtype=torch.float64, device=device)[:, None]
        proj = X * torch.cos(th) + Y * torch.sin(th)  # x . u
        w = torch.as_tensor(weights[idx], dtype=torch.float64, device=device)[:, None]
        if isinstance(g, FanBeam2D):
            towards_source = X * torch.sin(th) - Y * torch.cos(th)  # x . s_hat
            mag = R / (R - towards_source)
            proj = proj * mag
            w = w * mag**2
        k = (proj - s0) / ds + 1  # +1 for the pad
        k = k.clamp(0, n_det + 1)
        k0 = torch.floor(k).clamp(max=n_det)
        frac = (k - k0).to(dtype)
        k0 = k0.long()
        qa = q[:, idx]
        v0 = torch.gather(qa, 2, k0[None].expand(B * C, -1, -1))
        v1 = torch.gather(qa, 2, (k0 + 1)[None].expand(B * C, -1, -1))
        out += (((1 - frac) * v0 + frac * v1) * w.to(dtype)).sum(1)
    return out.reshape(B, C, H, W)


# --------------------------------------------------------------------------
# Example operators for the shared battery (tiny sizes)
# --------------------------------------------------------------------------
@register_example("ct.parallel.sparse")
def _example_parallel_sparse():
    g = ParallelBeam2D(n_angles=5, n_detectors=9, detector_spacing=0.9)
    return RayTransform(g, image_shape=(6, 7), backend="sparse")


@register_example("ct.parallel.matrix_free")
def _example_parallel_matrix_free():
    g = ParallelBeam2D(n_angles=5, n_detectors=9, detector_spacing=0.9)
    return RayTransform(g, image_shape=(6, 7), backend="matrix_free")


@register_example("ct.fan.sparse")
def _example_fan_sparse():
    g = FanBeam2D(n_angles=6, n_detectors=11, source_radius=12.0, detector_radius=8.0,
                  detector_spacing=1.3, detector_offset=0.4)
    return RayTransform(g, image_shape=(7, 6), pixel_size=1.1, backend="sparse")


@register_example("ct.fan.matrix_free")
def _example_fan_matrix_free():
    g = FanBeam2D(n_angles=6, n_detectors=11, source_radius=12.0, detector_radius=8.0,
                  detector_spacing=1.3, detector_offset=0.4)
    return RayTransform(g, image_shape=(7, 6), pixel_size=1.1, backend="matrix_free")


@register_example("ct.parallel.limited-angle-composed")
def _example_composed():
    g = ParallelBeam2D(angles=np.linspace(0.1, 2.0, 4), n_detectors=8)
    a = RayTransform(g, image_shape=(5, 5), backend="sparse")
    return a.T @ a - 0.3 * a.T @ a


@register_example("ct.parallel.sparse.quarter-turn-symmetric")
def _example_parallel_symmetric():
    g = ParallelBeam2D(n_angles=6, n_detectors=10, detector_spacing=0.95, detector_offset=0.2)
    return RayTransform(g, image_shape=(6, 6), backend="sparse")
