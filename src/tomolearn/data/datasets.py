"""Simulated datasets: the DIVal ellipses benchmark, other families, measurement shifts.

``SimulatedDataset(family, split, spec)[i]`` is ``(measurement, ground_truth)``
with shapes ``(1, n_angles, n_detectors)`` and ``(1, N, N)``, a pure function
of ``(family, spec, split, i)``.  Works unchanged with DataLoader workers and
``DistributedSampler`` (no state is shared between samples).

The standard benchmark (``ellipses_benchmark(split)``) is DIVal's "ellipses"
dataset as specified in DESIGN.md: 32 000 / 3 200 / 3 200 samples; DIVal
draws one sequential random stream, ours has the same distribution and is
indexable.
"""

from __future__ import annotations

from typing import Iterable, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ..registry import Task, task
from .families import FAMILIES

__all__ = ["SPLIT_SIZES", "SPLIT_IDS", "SimulatedDataset", "ellipses_benchmark", "sample_rngs",
           "SpecMismatchError", "spec_differences"]

#: Sizes of DIVal's ellipses splits.
SPLIT_SIZES = {"train": 32000, "validation": 3200, "test": 3200}


class SpecMismatchError(ValueError):
    """A dataset or file was made with another spec than the one asked for."""


#: Split ids mixed into every sample's seed.
SPLIT_IDS = {"train": 0, "validation": 1, "test": 2}


def sample_rngs(seed: int, split: str, index: int) -> Tuple[np.random.Generator, torch.Generator]:
    """Independent generators of sample ``index`` of ``split``: numpy (image) and torch (noise).

    Pure function of its arguments; streams of different (seed, split,
    index) are independent (``numpy.random.SeedSequence`` spawning).
    """
    if split not in SPLIT_IDS:
        raise ValueError(f"split must be one of {sorted(SPLIT_IDS)}, got {split!r}")
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise IndexError(f"sample index must be a non-negative int, got {index!r}")
    seq = np.random.SeedSequence((int(seed), SPLIT_IDS[split], int(index)))
    image_seq, noise_seq = seq.spawn(2)
    noise_seed = int(noise_seq.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
    return np.random.default_rng(image_seq), torch.Generator().manual_seed(noise_seed)


class SimulatedDataset(Dataset):
    """Measurement pairs of an image family simulated under a task: task + family + split + seed.

    Parameters
    ----------
    family : str
        A key of :data:`tomolearn.data.FAMILIES` ("ellipses", "shepp-logan", ...).
    split : {"train", "validation", "test"}
    spec : Task, optional
        Any registered task (:mod:`tomolearn.registry`) with square 2-D images and a
        ``seed`` field; default: the ``"ct"`` task, DIVal's ellipses benchmark.
    size : int, optional
        Number of samples; default :data:`SPLIT_SIZES` of the split.
    dtype : torch.dtype
        Of the returned tensors (data are simulated in float64, then cast); a complex task's
        tensors get the complex counterpart (complex64 for float32, complex128 for float64).
    """

    def __init__(self, family: str = "ellipses", split: str = "train",
                 spec: Optional[Task] = None, size: Optional[int] = None,
                 dtype: torch.dtype = torch.float32):
        if family not in FAMILIES:
            raise ValueError(f"unknown image family {family!r}; expected one of {sorted(FAMILIES)}")
        if split not in SPLIT_IDS:
            raise ValueError(f"split must be one of {sorted(SPLIT_IDS)}, got {split!r}")
        spec = task("ct") if spec is None else spec
        if not isinstance(spec, Task):
            raise TypeError(f"spec must be a task (tomolearn.registry.Task), got "
                            f"{type(spec).__name__}")
        shape = spec.image_shape
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ValueError(f"image families draw square 2-D images; task {spec.kind!r} has "
                             f"image shape {shape}")
        size = SPLIT_SIZES[split] if size is None else size
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ValueError(f"size must be a positive int, got {size!r}")
        self.family, self.split, self.simulation, self.size, self.dtype = family, split, spec, size, dtype

    @property
    def spec(self) -> dict:
        """The dataset's full description as plain data (stored with files and models)."""
        return {"family": self.family, "split": self.split, "size": self.size,
                "task": self.simulation.kind, "simulation": self.simulation.to_dict()}

    def check_spec(self, other: dict, what: str = "the data") -> None:
        """Raise :class:`SpecMismatchError` naming every field where ``other`` differs."""
        diffs = spec_differences(self.spec, other)
        if diffs:
            raise SpecMismatchError(f"{what} was made with a different spec; differing fields: "
                                    + ", ".join(diffs))

    def operator(self):
        """The reconstruction operator for this dataset's measurements."""
        return self.simulation.operator()

    def __len__(self) -> int:
        return self.size

    def _index(self, i) -> int:
        if isinstance(i, torch.Tensor) and i.dim() == 0:
            i = int(i)
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"sample index must be an int, got {type(i).__name__}")
        if not -self.size <= i < self.size:
            raise IndexError(f"sample {i} out of range for a dataset of {self.size}")
        return int(i) % self.size

    def ground_truth(self, i: int) -> torch.Tensor:
        """Ground truth of sample ``i``, (1, N, N) float64 (complex128 for a complex task; no
        projection)."""
        rng, gen = sample_rngs(self.simulation.seed, self.split, self._index(i))
        image = FAMILIES[self.family](rng, self.simulation.image_shape[-1])[None, None]
        return self.simulation.ground_truth(image, [gen])[0]

    def batch(self, indices: Iterable[int]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Samples ``indices`` at once (projection batched): ``(B,1,A,D)``, ``(B,1,N,N)``.

        Bit-identical to stacking ``self[i]`` for each index.
        """
        indices = [self._index(i) for i in indices]
        images, gens = [], []
        for i in indices:
            rng, gen = sample_rngs(self.simulation.seed, self.split, i)
            images.append(FAMILIES[self.family](rng, self.simulation.image_shape[-1]))
            gens.append(gen)
        x = self.simulation.ground_truth(torch.stack(images)[:, None], gens)
        y = self.simulation.simulate(x, gens)
        return _cast(y, self.dtype), _cast(x, self.dtype)

    def __getitem__(self, i):
        y, x = self.batch([i])
        return y[0], x[0]

    def __repr__(self):
        return (f"SimulatedDataset(family={self.family!r}, split={self.split!r}, size={self.size}, "
                f"spec={self.simulation})")


#: The complex dtype of each real precision: a complex task's tensors stay complex.
_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128,
            torch.complex64: torch.complex64, torch.complex128: torch.complex128}


def _cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t`` in ``dtype``, or in its complex counterpart when ``t`` is complex."""
    if t.is_complex():
        if dtype not in _COMPLEX:
            raise ValueError(f"complex data need dtype float32 or float64 (complex64 or "
                             f"complex128), got {dtype}")
        dtype = _COMPLEX[dtype]
    return t.to(dtype)


def spec_differences(a: dict, b: dict, prefix: str = "") -> list:
    """Dotted names of the fields where two nested spec dicts differ."""
    out = []
    for key in sorted(set(a) | set(b)):
        name = prefix + str(key)
        if key not in a or key not in b:
            out.append(name)
        elif isinstance(a[key], dict) and isinstance(b[key], dict):
            out += spec_differences(a[key], b[key], name + ".")
        elif a[key] != b[key]:
            out.append(name)
    return out


def ellipses_benchmark(split: str, **kwargs) -> SimulatedDataset:
    """DIVal's "ellipses" benchmark split: ``ds[i] -> (y (1,30,183), x (1,128,128))``.

    Keyword arguments go to :class:`SimulatedDataset` (e.g. ``size=`` for a
    prefix of the split, ``dtype=``).
    """
    return SimulatedDataset("ellipses", split, task("ct"), **kwargs)
