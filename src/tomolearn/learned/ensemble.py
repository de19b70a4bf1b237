"""Deep ensembles (Lakshminarayanan et al. 2017): K reconstructors of one operator, and their mean.

The members' spread is the uncertainty map of :func:`tomolearn.uq.scale_from_ensemble`.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import _Reconstructor
from .blocks import _n_parameters


class DeepEnsemble(nn.Module):
    """A deep ensemble: K independently trained reconstructors of one operator.

    ``forward(y)`` returns the ensemble mean, ``members(y)`` every member's
    reconstruction.  The spread of the members over pixels is an uncertainty
    map (Lakshminarayanan, Pritzel and Blundell 2017, "Simple and scalable
    predictive uncertainty estimation using deep ensembles", NeurIPS):
    members differ in their random initialisation and sample order only, and
    disagree most where the data leave the image undetermined.
    :func:`tomolearn.uq.scale_from_ensemble` turns ``members(y)`` into the
    mean and a per-pixel standard deviation.

    Parameters
    ----------
    members : sequence of reconstructors
        ``K >= 2`` models mapping ``(B, 1, A, D)`` to ``(B, 1, H, W)``, all
        bound to operators of one geometry (same ``geometry_spec``).

    Notes
    -----
    Like the members, an ensemble can be rebound to a compatible operator
    with :meth:`with_operator` (e.g. more angles); every member is checked.
    """

    def __init__(self, members):
        super().__init__()
        members = list(members)
        if len(members) < 2:
            raise ValueError(f"a deep ensemble needs at least 2 members, got {len(members)}")
        for i, m in enumerate(members):
            if not isinstance(m, _Reconstructor):
                raise TypeError(f"ensemble member {i} must be a tomolearn.learned reconstructor, "
                                f"got {type(m).__name__}")
            if m.geometry_spec != members[0].geometry_spec:
                raise ValueError(f"ensemble member {i} is bound to another geometry than member 0: "
                                 f"{m.geometry_spec} vs {members[0].geometry_spec}")
        self.ensemble = nn.ModuleList(members)

    @property
    def op(self):
        """The operator shared by the members."""
        return self.ensemble[0].op

    @property
    def geometry_spec(self) -> dict:
        """The members' ``geometry_spec`` (all equal)."""
        return self.ensemble[0].geometry_spec

    @property
    def image_shape(self):
        """``(H, W)`` of the reconstructed images."""
        return self.ensemble[0].image_shape

    @property
    def n_members(self) -> int:
        """K, the number of members."""
        return len(self.ensemble)

    @property
    def n_parameters(self) -> int:
        """Number of scalar parameters of all members together."""
        return _n_parameters(self)

    def check_operator(self, op) -> None:
        """Raise ``ValueError`` if the members cannot run with ``op`` (see the members' method)."""
        self.ensemble[0].check_operator(op)

    def with_operator(self, op) -> "DeepEnsemble":
        """A copy of the ensemble (weights copied) with every member bound to ``op``."""
        new = DeepEnsemble([m.with_operator(op) for m in self.ensemble])
        if hasattr(self, "card"):
            new.card = self.card
        return new

    def members(self, y: torch.Tensor) -> torch.Tensor:
        """Every member's reconstruction of ``y`` (B, 1, A, D): a (K, B, 1, H, W) tensor."""
        return torch.stack([m(y) for m in self.ensemble])

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """The ensemble mean, (B, 1, H, W)."""
        return self.members(y).mean(0)
