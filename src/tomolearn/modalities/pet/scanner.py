"""Clinical PET scanners as 2-D direct-plane sinogram geometries.

A :class:`Scanner` holds the transaxial figures of one ring: crystals per ring, views and radial
bins of its (arc-corrected) direct-plane sinogram, the bin size, the ring radius and the mean
depth of interaction.  :meth:`Scanner.geometry` turns them into a
:class:`~tomolearn.modalities.ct.ParallelBeam2D` (lengths in mm), so the PET projector is the
exact Joseph ray transform of :mod:`tomolearn.modalities.ct` (reused, not copied).

Conventions (those of the CT geometries): ``x`` to the right, ``y`` up (row 0 of an image is
the top), the image centred on the scanner axis.  View ``v`` of ``n_views`` has angle
``theta_v = v pi / n_views`` (STIR's view 0 at angle 0); radial bin ``k`` of ``n_bins`` is
centred at ``(k - (n_bins - 1) / 2) * bin_size_mm`` along ``(cos theta, sin theta)``.  With
view / bin mashing ``m`` (adding ``m`` neighbouring views or bins, as scanners mash views) the
mashed view lies at the mean angle of its ``m`` views and the mashed bin is ``m`` bins wide.

The Siemens Biograph mCT
------------------------
48 blocks of 13 x 13 LSO crystals (4 x 4 x 20 mm) per ring; Siemens sinograms count one
virtual crystal per block (the gap), hence ``(13 + 1) * 48 = 672`` crystals per ring and
``672 / 2 = 336`` views, mashed by 2 to **168 views**; **400 radial bins of 2.005 mm**;
inner ring radius **421.0 mm** and 7 mm average depth of interaction (STIR's ``Scanner.cxx``
entry "Siemens mCT" [1]_; 400 bins and mash factor 2 in the vendor sinogram as read by [2]_).
Its clinical OSEM protocol is 3 iterations x 21 subsets [3]_ (21 divides 168: 8 views per
subset).  Time-of-flight: 13 TOF bins in STIR's entry (:mod:`.tof`, the task's ``tof_bins``).

References
----------
.. [1] K. Thielemans et al., "STIR: software for tomographic image reconstruction release 2",
       Phys. Med. Biol. 57(4), 867-883, 2012; ``src/buildblock/Scanner.cxx`` (case
       ``Siemens_mCT``: 55 rings, 400 bins, (13+1)*48 detectors per ring, 421.0 mm inner
       ring radius, 7.0 mm average DOI, 4.054 mm ring spacing, 2.005 mm default bin size).
.. [2] The Siemens mCT geometry of the BuildGeometry / NiftyPET-style scanner dictionaries
       (``nRadialBins = 400``, ``nMash = 2``, 48 blocks of 13 physical crystals plus one
       virtual crystal).
.. [3] Multi-centre comparison, EJNMMI Physics 4 (2017), doi:10.1186/s40658-017-0179-2,
       Table 3: "mCT: PSF + TOF OSEM, 21 subsets, 3 iterations".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict

import numpy as np

from ..ct.geometry import ParallelBeam2D

__all__ = ["Scanner", "SCANNERS", "scanner"]


@dataclass(frozen=True)
class Scanner:
    """One clinical PET ring's transaxial figures (all lengths in mm).

    Attributes
    ----------
    name : str
        Human-readable model name.
    crystals_per_ring : int
        Detectors per ring, virtual gap crystals included (the sinogram's convention).
    n_views : int
        Views of the direct-plane sinogram (after the vendor's own view mashing).
    n_bins : int
        Radial bins (arc-corrected).
    bin_size_mm : float
        Radial bin width.
    ring_radius_mm : float
        Inner radius of the detector ring.
    doi_mm : float
        Average depth of interaction (added to the ring radius for the LOR end points).
    osem_iterations, osem_subsets : int
        The vendor's clinical OSEM protocol.
    reference : str
        Where the figures come from.
    """

    name: str
    crystals_per_ring: int
    n_views: int
    n_bins: int
    bin_size_mm: float
    ring_radius_mm: float
    doi_mm: float
    osem_iterations: int
    osem_subsets: int
    reference: str

    def geometry(self, view_mash: int = 1, bin_mash: int = 1) -> ParallelBeam2D:
        """The direct-plane sinogram as a parallel-beam geometry in mm.

        Returns a :class:`ParallelBeam2D` with ``n_views // view_mash`` angles (radians, the mean
        of each group of mashed views) and ``n_bins // bin_mash`` bins ``bin_mash *
        bin_size_mm`` wide; ``ValueError`` when a mash factor does not divide its count.
        """
        for value, total, name in ((view_mash, self.n_views, "view_mash"),
                                   (bin_mash, self.n_bins, "bin_mash")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1 or total % value:
                raise ValueError(f"{name} must be a positive int dividing {total} "
                                 f"({self.name}), got {value!r}")
        n = self.n_views // view_mash
        angles = (np.arange(n) * view_mash + (view_mash - 1) / 2) * math.pi / self.n_views
        return ParallelBeam2D(angles=angles, n_detectors=self.n_bins // bin_mash,
                              detector_spacing=self.bin_size_mm * bin_mash)

    @property
    def detection_radius_mm(self) -> float:
        """Ring radius plus the average depth of interaction: where LORs end."""
        return self.ring_radius_mm + self.doi_mm

    def crystal_pairs(self, geometry: ParallelBeam2D) -> np.ndarray:
        """Crystal indices ``(n_views, n_bins, 2)`` int64 at the two ends of each bin's central
        LOR on the detection circle (crystal ``c`` covers ring angles ``[c, c + 1) * 2 pi /
        crystals_per_ring`` from the x axis); used for per-bin normalisation factors."""
        theta = np.asarray(geometry.angles)[:, None]
        t = geometry.detector_positions()[None, :]
        radius = self.detection_radius_mm
        if np.abs(t).max() >= radius:
            raise ValueError(f"bins reach {np.abs(t).max():.1f} mm, outside the ring "
                             f"({radius:.1f} mm)")
        half = np.sqrt(radius ** 2 - t ** 2)
        ux, uy = np.cos(theta), np.sin(theta)
        dx, dy = np.sin(theta), -np.cos(theta)
        out = []
        for sign in (1.0, -1.0):
            px, py = t * ux + sign * half * dx, t * uy + sign * half * dy
            phi = np.mod(np.arctan2(py, px), 2 * math.pi)
            out.append(np.floor(phi / (2 * math.pi) * self.crystals_per_ring).astype(np.int64)
                       % self.crystals_per_ring)
        return np.stack(out, axis=-1)


#: The registered scanners by key.
SCANNERS: Dict[str, Scanner] = {
    "mct": Scanner(
        name="Siemens Biograph mCT", crystals_per_ring=(13 + 1) * 48, n_views=168, n_bins=400,
        bin_size_mm=2.005, ring_radius_mm=421.0, doi_mm=7.0, osem_iterations=3, osem_subsets=21,
        reference="STIR Scanner.cxx (Siemens mCT); EJNMMI Phys. 4 (2017) Table 3 for 3x21 OSEM"),
}


def scanner(key: str) -> Scanner:
    """The registered :class:`Scanner` ``key``; ``ValueError`` naming the known ones."""
    if key not in SCANNERS:
        raise ValueError(f"unknown scanner {key!r}; known: {', '.join(sorted(SCANNERS))}")
    return SCANNERS[key]
