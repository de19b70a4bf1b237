"""The 2-D ray transform (Joseph's method) with an exact adjoint, sparse or matrix-free.

Geometry conventions (ASTRA's 2-D ``parallel`` and ``fanflat``) and references are in
:mod:`tomolearn.modalities.ct`: each ray is sampled once per image column (or row) with
linear interpolation between the two neighbouring pixels, as ASTRA's ``linear`` projector.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ...files import atomic_write_bytes
from ...operators import LinearOperator
from .fbp import FBP_DEFAULTS, fbp
from .geometry import FanBeam2D, ParallelBeam2D, _positive_float, _positive_int
from .joseph import _joseph_samples, _pad

# torch marks its (well-tested) CSR support as beta on every construction; say it once here.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

__all__ = ["RayTransform", "SPARSE_MAX_NNZ"]

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

    def initial_reconstruction(self, y: torch.Tensor) -> torch.Tensor:
        """FBP of ``y`` with :data:`FBP_DEFAULTS` (Hamming, frequency scaling 0.7): the CT
        tasks' first guess and the input of FBPConvNet."""
        return fbp(self, y, **FBP_DEFAULTS)

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
