r"""Sylvester flows (van den Berg, Hasenclever, Tomczak and Welling, 2018): planar flows with M hidden units.

A planar layer moves points along one direction :math:`u`. A Sylvester layer moves them in an
M-dimensional subspace (lecture 003, "Residual flows: planar/Sylvester"):

.. math:: f(z) = z + A\, h(Bz + b), \qquad A = QR \in \mathbb R^{D\times M},\quad B = \tilde R Q^\top \in \mathbb R^{M\times D},

with :math:`h = \tanh`, :math:`Q` a :math:`D\times M` matrix with orthonormal columns
(:math:`Q^\top Q = I_M`) and :math:`R, \tilde R` upper triangular :math:`M\times M`.

**Log-det.** Sylvester's determinant identity :math:`\det(I_D + AB') = \det(I_M + B'A)` with
:math:`B' = \mathrm{diag}(h')B` turns a :math:`D\times D` determinant into an :math:`M\times M` one,
and :math:`Q^\top Q = I` leaves a triangular matrix:

.. math:: \log\left|\det\frac{\partial f}{\partial z}\right|
          = \log\left|\det\bigl(I_M + \mathrm{diag}\, h'(Bz + b)\, \tilde R R\bigr)\right|
          = \sum_{i=1}^M \log\left|1 + h'(a_i)\, \tilde r_{ii} r_{ii}\right|,

:math:`O(M)` once :math:`a = Bz + b` is known (the diagonal of a product of upper triangular
matrices is the product of their diagonals). For :math:`M = 1`, :math:`A = r q` and
:math:`B = \tilde r q^\top` give the planar layer with :math:`u = rq`, :math:`w = \tilde r q`.

**Invertibility.** With :math:`h' \in (0, 1]` the map is invertible when
:math:`r_{ii}\tilde r_{ii} > -1` for every i (van den Berg et al., Theorem 2). Each diagonal pair
is reparametrized exactly as ``Planar`` reparametrizes :math:`(u, w)` in one dimension:
:math:`\hat r_{ii} = r_{ii} + (m(\tilde r_{ii} r_{ii}) - \tilde r_{ii} r_{ii})/\tilde r_{ii}` with
:math:`m(a) = -1 + \operatorname{softplus}(a)`, so :math:`\tilde r_{ii}\hat r_{ii} = m(\cdot) > -1`
for every raw value (:math:`\hat r_{ii} = r_{ii}` where :math:`\tilde r_{ii} = 0`). (The paper bounds
both diagonals with a tanh instead.) In floating point the product rounds to -1 once a is below
about -33.5 (float64) or -14.5 (float32), so the log-det never forms :math:`1 + m(a)`: each factor is
:math:`1 + h' m(a) = h^2 + h' \operatorname{softplus}(a)`, a sum of positive terms.

**Variants** differ only in how Q is made: ``Sylvester`` orthogonalizes a free
:math:`D\times M` matrix (a QR decomposition), ``HouseholderSylvester`` multiplies Householder
reflections, ``TriangularSylvester`` uses the identity or the reversal permutation (M = D; then
:math:`A, B` are triangular). Like ``Planar``, every variant can be amortized: a network of a
context (a VAE encoder's features) adds per-row offsets to all raw parameters. There is no
closed-form inverse: these layers are used in the sampling direction (variational posteriors).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..core import Bijection
from ..nn import mlp
from ..validation import check_context, check_dim
from .residual import Planar, check_amortized_context

__all__ = ["Sylvester", "HouseholderSylvester", "TriangularSylvester"]


class Sylvester(Bijection):
    r"""Orthogonal Sylvester layer :math:`x = z + QR\tanh(\tilde R Q^\top z + b)`, Q from a QR decomposition.

    Q is the orthonormal factor of a free :math:`D\times M` parameter (``torch.linalg.qr``, which
    autograd differentiates), so :math:`Q^\top Q = I_M` to round-off for every value of it.

    Args:
        features: number of features D.
        m: number of hidden units M, ``1 <= m <= features`` (default: ``features``).
        context_features: if > 0, the layer is *amortized*: ``mlp(context_features, #raw, hidden,
            depth=1)`` of the context adds a per-row offset to every raw parameter (R, R̃, b and
            Q's). Its last layer starts at zero, so a fresh amortized layer equals the direct one.
        hidden: width of that network (a positive integer, checked even when unused).
        constrain: reparametrize the diagonals so that :math:`r_{ii}\tilde r_{ii} > -1` (default);
            ``False`` uses the raw diagonals (the map can fold, as an unconstrained ``Planar``).

    Example:
        >>> import torch, flowbook
        >>> layer = flowbook.Sylvester(4, m=2).double()
        >>> z = torch.randn(5, 4, dtype=torch.float64)
        >>> x, logabsdet = layer(z)
        >>> torch.allclose(logabsdet, flowbook.logabsdet(layer, z))
        True
        >>> R, R_tilde = layer.triangular()[:2]
        >>> bool((R.diagonal(dim1=-2, dim2=-1) * R_tilde.diagonal(dim1=-2, dim2=-1) > -1).all())
        True
    """

    def __init__(self, features: int, m: int | None = None, context_features: int = 0, hidden: int = 32,
                 constrain: bool = True):
        super().__init__()
        self.features = d = check_dim(features)
        self.m = m = d if m is None else check_dim(m, "m")
        if m > d:
            raise ValueError(f"m (hidden units) must be at most features = {d}, got {m}")
        if not isinstance(constrain, bool):
            raise TypeError(f"constrain must be True or False, got {constrain!r}")
        self.constrain, hidden = constrain, check_dim(hidden, "hidden")
        # R (the A side) starts small, R~ (the B side) of order 1: like Planar's u and w
        self.r = nn.Parameter(0.1 * torch.randn(m, m) / m ** 0.5)
        self.r_tilde = nn.Parameter(torch.randn(m, m) / m ** 0.5)
        self.b = nn.Parameter(torch.zeros(m))
        self.q_raw = self.make_q_parameter()
        self.context_features = 0 if not context_features else check_dim(context_features, "context_features")
        if self.context_features:
            self.net = mlp(self.context_features, self.n_raw(), hidden, depth=1, activation=nn.Tanh)

    @torch.no_grad()
    def start_as_identity(self) -> "Sylvester":
        r"""Set ``R`` so that every constrained product :math:`r_{ii}\tilde r_{ii}` is 0: the layer is the identity.

        The diagonal is constrained like ``Planar``'s :math:`w^\top\hat u`, :math:`m(a) = -1 +
        \operatorname{softplus}(a)`, which is 0 at :math:`a_0 = \log(e - 1)`; so
        :math:`r_{ii} = a_0/\tilde r_{ii}`, off-diagonal 0. A diagonal entry :math:`\tilde r_{ii}` that is
        0 (below the dtype's eps), where that division fails and the constraint is singular (a layer
        with :math:`\tilde R = 0` could not learn), is set to 1 first, and a singular raw ``Q`` (no
        gradient through its QR decomposition) to the first M columns of the identity. Returns the layer.

        Example:
            >>> import torch, flowbook
            >>> layer = flowbook.Sylvester(3).start_as_identity()
            >>> z = torch.randn(4, 3)
            >>> torch.allclose(layer(z)[0], z, atol=1e-6)
            True
        """
        diag_tilde = self.r_tilde.diagonal()  # a view: filling it fills r_tilde
        diag_tilde.masked_fill_(diag_tilde.abs() < torch.finfo(diag_tilde.dtype).eps, 1.0)
        self.r.copy_(torch.diag(math.log(math.e - 1) / diag_tilde))
        if self.q_raw is not None and self.q_raw.shape == (self.features, self.m) \
                and torch.linalg.matrix_rank(self.q_raw) < self.m:  # QR has no derivative at a singular matrix
            self.q_raw.copy_(torch.eye(self.features, self.m))
        return self

    # ------------------------------------------------------------------ what the variants change
    def make_q_parameter(self) -> nn.Parameter | None:
        """The raw parameter Q is made from: here a free ``(D, M)`` matrix."""
        return nn.Parameter(torch.randn(self.features, self.m))

    def orthonormal(self, q_raw: torch.Tensor) -> torch.Tensor:
        """``(n, D, M)`` matrices with orthonormal columns from ``(n, D, M)`` raw ones: the Q of a QR."""
        return torch.linalg.qr(q_raw).Q

    # ------------------------------------------------------------------ shared machinery
    def n_raw(self) -> int:
        """How many raw numbers an amortization network offsets: R, R̃, b and Q's raw parameter."""
        return 2 * self.m * self.m + self.m + (0 if self.q_raw is None else self.q_raw.numel())

    def raw_parameters(self, context=None, n: int = 1):
        """``(r, r_tilde, b, q_raw)`` with a leading batch dimension (1, or n amortized rows)."""
        raw = [self.r.unsqueeze(0), self.r_tilde.unsqueeze(0), self.b.unsqueeze(0)]
        raw.append(None if self.q_raw is None else self.q_raw.unsqueeze(0))
        if not self.context_features:
            check_context(context, 0, type(self).__name__)
            return raw
        check_amortized_context(self, context, n)
        offsets = self.net(context).split([p.numel() for p in raw if p is not None], dim=1)
        return [None if p is None else p + o.reshape(n, *p.shape[1:])
                for p, o in zip(raw, offsets + (None,) * (len(raw) - len(offsets)))]

    def triangular(self, context=None, n: int = 1, margin: bool = False):
        r"""``(R, R~, b, Q)`` as the layer uses them: ``(k, M, M)``, ``(k, M, M)``, ``(k, M)``, ``(k, D, M)``.

        k is 1 for a direct layer, the number of context rows for an amortized one. The
        diagonal of R is reparametrized (unless ``constrain=False``) so that
        :math:`r_{ii}\tilde r_{ii} > -1`. With ``margin``, also the ``(k, M)`` margins
        :math:`1 + \tilde r_{ii} r_{ii}`, computed as :math:`\operatorname{softplus}(\tilde r_{ii} r_{ii})` of
        the raw diagonals (not from the product, which can round to -1).
        """
        r, r_tilde, b, q_raw = self.raw_parameters(context, n)
        diag, diag_tilde = r.diagonal(dim1=-2, dim2=-1), r_tilde.diagonal(dim1=-2, dim2=-1)
        if self.constrain:  # Planar's (u, w) rule, one diagonal pair at a time
            pair = diag.unsqueeze(-1), diag_tilde.unsqueeze(-1)
            margins = Planar.one_plus_wu_hat(*pair).squeeze(-1)  # 1 + r~_ii r^_ii
            diag = Planar.constrain_u(*pair).squeeze(-1)
        else:
            margins = 1 + diag_tilde * diag  # 1 + r~_ii r_ii
        R = r.triu(1) + torch.diag_embed(diag)
        R_tilde = r_tilde.triu(1) + torch.diag_embed(diag_tilde)
        return (R, R_tilde, b, self.orthonormal(q_raw)) + ((margins,) if margin else ())

    def forward(self, z, context=None):
        self.check_input(z, "z")
        R, R_tilde, b, Q, margins = self.triangular(context, z.shape[0],
                                                    margin=True)
        qz = (z.unsqueeze(1) @ Q).squeeze(1)  # Q^T z, (n, M)
        # h(R~ Q^T z + b)
        h = torch.tanh((qz.unsqueeze(1) @ R_tilde.transpose(1, 2)).squeeze(1)
                       + b)
        # z + Q R h
        x = z + ((h.unsqueeze(1) @ R.transpose(1, 2))
                 @ Q.transpose(1, 2)).squeeze(1)
        # det(I + diag(h') R~ R): triangular, diagonal 1 + h' r~_ii r_ii
        #                                         = h^2 + h' (1 + r~_ii r_ii)
        return x, torch.log(torch.abs(h.pow(2) + (1 - h.pow(2)) * margins)).sum(-1)

    def inverse(self, x, context=None):
        raise NotImplementedError(
            f"{type(self).__name__} has no closed-form inverse, so it cannot evaluate log_prob of given points; "
            "use it in the sampling direction: Flow.sample_and_log_prob (a VAE posterior, flowbook.fit_reverse_kl)"
        )

    def extra_repr(self):
        amortized = f", context_features={self.context_features}" if self.context_features else ""
        return f"features={self.features}, m={self.m}{amortized}, constrain={self.constrain}"


class HouseholderSylvester(Sylvester):
    r"""Sylvester layer whose Q is the first M columns of :math:`H_1\cdots H_K`, Householder reflections.

    :math:`H_k = I - 2 v_k v_k^\top/\lVert v_k\rVert^2` is orthogonal, so any product of them is,
    and its first M columns are orthonormal. van den Berg et al. use M = D (the default here).

    Args:
        features, m, context_features, hidden, constrain: as ``Sylvester``.
        reflections: the number K of reflections (default: ``features``).

    Example:
        >>> import torch, flowbook
        >>> layer = flowbook.HouseholderSylvester(3, reflections=2).double()
        >>> Q = layer.triangular()[3][0]
        >>> torch.allclose(Q.T @ Q, torch.eye(3, dtype=torch.float64))
        True
    """

    def __init__(self, features: int, m: int | None = None, reflections: int | None = None,
                 context_features: int = 0, hidden: int = 32, constrain: bool = True):
        self.reflections = check_dim(features if reflections is None else reflections, "reflections")
        super().__init__(features, m, context_features, hidden, constrain)

    def make_q_parameter(self) -> nn.Parameter:
        """K raw reflection vectors, ``(K, D)``."""
        return nn.Parameter(torch.randn(self.reflections, self.features))

    def orthonormal(self, q_raw: torch.Tensor) -> torch.Tensor:
        """``H_1 ... H_K`` applied to the first M columns of the identity, for each row's vectors ``(n, K, D)``."""
        n = q_raw.shape[0]
        Q = torch.eye(self.features, self.m, dtype=q_raw.dtype, device=q_raw.device).expand(n, -1, -1)
        for k in range(self.reflections - 1, -1, -1):  # H_K acts first
            v = q_raw[:, k].unsqueeze(-1)                                   # (n, D, 1)
            Q = Q - 2 * v @ (v.transpose(1, 2) @ Q) / (v.transpose(1, 2) @ v).clamp_min(1e-30)
        return Q


class TriangularSylvester(Sylvester):
    r"""Sylvester layer with Q a permutation (M = D): the identity, or the reversal with ``reverse=True``.

    Then :math:`A = QR` and :math:`B = \tilde R Q^\top` are triangular up to the permutation; stacks
    alternate ``reverse`` so that every feature is eventually moved by every other one.

    Example:
        >>> import torch, flowbook
        >>> layer = flowbook.TriangularSylvester(3, reverse=True)
        >>> layer.triangular()[3][0]
        tensor([[0., 0., 1.],
                [0., 1., 0.],
                [1., 0., 0.]])
    """

    def __init__(self, features: int, reverse: bool = False, context_features: int = 0, hidden: int = 32,
                 constrain: bool = True):
        if not isinstance(reverse, bool):
            raise TypeError(f"reverse must be True or False, got {reverse!r}")
        self.reverse = reverse
        super().__init__(features, None, context_features, hidden, constrain)
        eye = torch.eye(self.features)
        self.register_buffer("permutation", eye.flip(1) if self.reverse else eye)

    def make_q_parameter(self) -> None:
        """No raw parameter: Q is a fixed permutation."""
        return None

    def orthonormal(self, q_raw) -> torch.Tensor:
        """The permutation matrix, ``(1, D, D)``."""
        return self.permutation.unsqueeze(0)

    def extra_repr(self):
        return super().extra_repr() + f", reverse={self.reverse}"
