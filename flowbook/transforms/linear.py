r"""Linear bijections: elementwise affine maps, invertible matrices, permutations.

A general matrix :math:`W` costs :math:`O(D^3)` for its determinant and inverse. ``LULinear``
stores :math:`W = PLU` (permutation, unit lower triangular, upper triangular), so
:math:`\log|\det W| = \sum_i \log|U_{ii}|` costs :math:`O(D)` and the inverse is two
triangular solves (:math:`O(D^2)`). ``QRLinear`` stores :math:`W = QR` with
:math:`Q = H_1 \cdots H_K` a product of Householder reflections
:math:`H_k = I - 2 v_k v_k^\top / v_k^\top v_k` (each orthogonal, :math:`|\det H_k| = 1`), so
:math:`\log|\det W| = \sum_i \log|R_{ii}|` as well (lecture 003 lists both).
"""
from __future__ import annotations

import torch
from torch import nn

from ..core import Bijection
from ..validation import check_dim

__all__ = ["Affine", "LULinear", "QRLinear", "Permutation", "ReversePermutation"]


class Affine(Bijection):
    r"""Elementwise affine map :math:`x = z \odot e^{s} + t` with learnable ``log_scale`` s and ``shift`` t.

    :math:`\log|\det \partial x/\partial z| = \sum_i s_i`, the same for every input.
    Starts as the identity.

    Example:
        >>> import torch, flowbook
        >>> b = flowbook.Affine(2)
        >>> x, logabsdet = b(torch.ones(1, 2))
        >>> x.tolist(), logabsdet.tolist()
        ([[1.0, 1.0]], [0.0])
    """

    def __init__(self, features: int):
        super().__init__()
        self.features = check_dim(features)
        self.log_scale = nn.Parameter(torch.zeros(self.features))
        self.shift = nn.Parameter(torch.zeros(self.features))

    def forward(self, z, context=None):
        self.check_input(z, "z")
        x = z * self.log_scale.exp() + self.shift
        return x, self.log_scale.sum().expand(z.shape[0])

    def inverse(self, x, context=None):
        self.check_input(x, "x")
        z = (x - self.shift) * torch.exp(-self.log_scale)
        return z, (-self.log_scale.sum()).expand(x.shape[0])


class LULinear(Bijection):
    r"""An invertible linear map :math:`x = W z + b` with :math:`W = P L U`.

    ``L`` is unit lower triangular, ``U`` upper triangular with diagonal
    :math:`\mathrm{sign}_i \, e^{\ell_i}`, so ``W`` is invertible for every value of the
    parameters and :math:`\log|\det W| = \sum_i \ell_i` (:math:`O(D)`).

    Args:
        features: number of features.
        matrix: optional ``(features, features)`` matrix to start from (it is LU-factorized; a
            singular matrix raises ``ValueError``). By default a random rotation, which
            mixes all features and has log-det 0.
        bias: learn the offset ``b`` (starts at zero).

    Example:
        >>> import torch, flowbook
        >>> b = flowbook.LULinear(2, matrix=torch.tensor([[2., -1.], [2., 1.]]))
        >>> round(b.logabsdet().exp().item(), 4)
        4.0
    """

    def __init__(self, features: int, matrix: torch.Tensor | None = None, bias: bool = True):
        super().__init__()
        self.features = check_dim(features)
        if matrix is None:
            matrix, _ = torch.linalg.qr(torch.randn(self.features, self.features))
        matrix = torch.as_tensor(matrix, dtype=torch.get_default_dtype())
        if matrix.shape != (self.features, self.features):
            raise ValueError(f"matrix must have shape ({self.features}, {self.features}), got {tuple(matrix.shape)}")
        P, L, U = torch.linalg.lu(matrix.double())
        diag = U.diagonal()
        if (diag.abs() < 1e-12 * max(1.0, matrix.abs().max().item())).any() or not torch.isfinite(U).all():
            raise ValueError("matrix is singular (det = 0); a linear flow needs an invertible matrix")
        self.register_buffer("perm", P.to(matrix.dtype))
        self.register_buffer("sign", diag.sign().to(matrix.dtype))
        self.lower = nn.Parameter(L.tril(-1).to(matrix.dtype))
        self.upper = nn.Parameter(U.triu(1).to(matrix.dtype))
        self.log_diag = nn.Parameter(diag.abs().log().to(matrix.dtype))
        self.bias = nn.Parameter(torch.zeros(self.features, dtype=matrix.dtype)) if bias else None
        eye = torch.eye(self.features, dtype=matrix.dtype)
        self.register_buffer("_eye", eye)

    def _factors(self):
        L = self.lower.tril(-1) + self._eye
        U = self.upper.triu(1) + torch.diag(self.sign * self.log_diag.exp())
        return L, U

    def matrix(self) -> torch.Tensor:
        """The dense ``W = P L U`` (for display and tests; the layer never forms it to invert)."""
        L, U = self._factors()
        return self.perm @ L @ U

    def logabsdet(self) -> torch.Tensor:
        """:math:`\\log|\\det W|` in O(D)."""
        return self.log_diag.sum()

    def forward(self, z, context=None):
        self.check_input(z, "z")
        L, U = self._factors()
        x = (z @ U.T @ L.T) @ self.perm.T  # W z row-wise, without forming W (O(B D^2))
        if self.bias is not None:
            x = x + self.bias
        return x, self.logabsdet().expand(z.shape[0])

    def inverse(self, x, context=None):
        self.check_input(x, "x")
        if self.bias is not None:
            x = x - self.bias
        L, U = self._factors()
        # Solve P L U z = x column-wise: two triangular solves, no matrix inverse.
        y = (x @ self.perm).T  # P^T x, as columns
        y = torch.linalg.solve_triangular(L, y, upper=False, unitriangular=True)
        z = torch.linalg.solve_triangular(U, y, upper=True).T
        return z, (-self.logabsdet()).expand(x.shape[0])


class QRLinear(Bijection):
    r"""An invertible linear map :math:`x = Q R z + b` with ``Q`` a product of Householder reflections.

    Every value of the parameters gives an invertible ``W = QR`` (``R``'s diagonal is
    :math:`\pm e^{\ell_i} \neq 0`). With ``K`` reflections, :math:`\mathrm{sign}\det W =
    (-1)^K \prod_i \mathrm{sign}_i`; the orientation never matters for a density.

    Args:
        features: number of features.
        reflections: ``K`` (default ``features``: enough to reach every orthogonal matrix with
            determinant :math:`(-1)^K`).
        bias: learn the offset ``b`` (starts at zero).

    Starts as a random rotation/reflection (``R = I``), which mixes all features and has log-det 0.

    Example:
        >>> import torch, flowbook
        >>> b = flowbook.QRLinear(3)
        >>> W = b.matrix()
        >>> torch.allclose(W.T @ W, torch.eye(3), atol=1e-5), b.logabsdet().item()
        (True, 0.0)
        >>> z = torch.randn(4, 3)
        >>> x, logabsdet = b(z)
        >>> torch.allclose(b.inverse(x)[0], z, atol=1e-5), logabsdet.shape
        (True, torch.Size([4]))
    """

    def __init__(self, features: int, reflections: int | None = None, bias: bool = True):
        super().__init__()
        self.features = check_dim(features)
        self.reflections = check_dim(self.features if reflections is None else reflections, "reflections")
        self.vectors = nn.Parameter(torch.randn(self.reflections, self.features))
        self.upper = nn.Parameter(torch.zeros(self.features, self.features))
        self.log_diag = nn.Parameter(torch.zeros(self.features))
        self.register_buffer("sign", torch.ones(self.features))
        self.bias = nn.Parameter(torch.zeros(self.features)) if bias else None

    def _units(self):
        # Unit vectors v / |v|; the clamp only guards the measure-zero case v = 0.
        v = self.vectors
        return v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def _R(self):
        return self.upper.triu(1) + torch.diag(self.sign * self.log_diag.exp())

    @staticmethod
    def _reflect(y, u):
        """Apply ``H = I - 2 u u^T`` to every row of ``y`` in O(B D)."""
        return y - 2 * (y @ u).unsqueeze(1) * u

    def orthogonal(self) -> torch.Tensor:
        """The dense ``Q = H_1 ... H_K`` (for display and tests)."""
        eye = torch.eye(self.features, dtype=self.vectors.dtype, device=self.vectors.device)
        q = eye
        for u in self._units():
            q = q @ (eye - 2 * torch.outer(u, u))
        return q

    def matrix(self) -> torch.Tensor:
        """The dense ``W = Q R`` (the layer never forms it)."""
        return self.orthogonal() @ self._R()

    def logabsdet(self) -> torch.Tensor:
        """:math:`\\log|\\det W| = \\sum_i \\ell_i` in O(D)."""
        return self.log_diag.sum()

    def forward(self, z, context=None):
        self.check_input(z, "z")
        y = z @ self._R().T  # R z, row-wise
        # Q y = H_1(H_2(...H_K y)): the last reflection acts first
        for u in self._units().flip(0):
            y = self._reflect(y, u)
        if self.bias is not None:
            y = y + self.bias
        return y, self.logabsdet().expand(z.shape[0])

    def inverse(self, x, context=None):
        self.check_input(x, "x")
        y = x - self.bias if self.bias is not None else x
        for u in self._units():  # Q^T = H_K ... H_1 (each H is its own inverse)
            y = self._reflect(y, u)
        z = torch.linalg.solve_triangular(self._R(), y.T, upper=True).T
        return z, (-self.logabsdet()).expand(x.shape[0])


class Permutation(Bijection):
    """Reorder features: ``x = z[:, perm]``. Volume preserving (log-det 0).

    Raises ``ValueError`` if ``perm`` is not a permutation of ``0..D-1``.

    Example:
        >>> import torch, flowbook
        >>> x, logabsdet = flowbook.Permutation([2, 0, 1])(torch.tensor([[10.0, 20.0, 30.0]]))
        >>> x.tolist(), logabsdet.tolist()
        ([[30.0, 10.0, 20.0]], [0.0])
    """

    def __init__(self, perm):
        super().__init__()
        perm = torch.as_tensor(perm, dtype=torch.long)
        if perm.dim() != 1 or perm.numel() == 0:
            raise ValueError(f"perm must be a non-empty 1-D sequence of indices, got shape {tuple(perm.shape)}")
        if not torch.equal(perm.sort().values, torch.arange(perm.numel())):
            raise ValueError(f"perm must be a permutation of 0..{perm.numel() - 1}, got {perm.tolist()}")
        self.features = perm.numel()
        self.register_buffer("perm", perm)
        self.register_buffer("inv_perm", perm.argsort())

    def forward(self, z, context=None):
        self.check_input(z, "z")
        return z[:, self.perm], z.new_zeros(z.shape[0])

    def inverse(self, x, context=None):
        self.check_input(x, "x")
        return x[:, self.inv_perm], x.new_zeros(x.shape[0])


class ReversePermutation(Permutation):
    """Reverse the order of the features, the usual glue between autoregressive layers.

    Example:
        >>> import torch, flowbook
        >>> flowbook.ReversePermutation(3)(torch.tensor([[1.0, 2.0, 3.0]]))[0].tolist()
        [[3.0, 2.0, 1.0]]
    """

    def __init__(self, features: int):
        super().__init__(torch.arange(check_dim(features) - 1, -1, -1))
