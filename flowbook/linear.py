r"""Linear bijections: elementwise affine maps, invertible matrices, permutations.

A general matrix :math:`W` costs :math:`O(D^3)` for its determinant and inverse. ``LULinear``
stores :math:`W = PLU` (permutation, unit lower triangular, upper triangular), so
:math:`\log|\det W| = \sum_i \log|U_{ii}|` costs :math:`O(D)` and the inverse is two
triangular solves (:math:`O(D^2)`).
"""
from __future__ import annotations

import torch
from torch import nn

from .core import Bijection
from .utils import check_dim

__all__ = ["Affine", "LULinear", "Permutation", "ReversePermutation"]


class Affine(Bijection):
    r"""Elementwise affine map :math:`x = z \odot e^{s} + t` with learnable ``log_scale`` s and ``shift`` t.

    :math:`\log|\det \partial x/\partial z| = \sum_i s_i`, the same for every input.
    Starts as the identity.

    Example:
        >>> import torch, flowbook
        >>> b = flowbook.Affine(2)
        >>> x, ladj = b(torch.ones(1, 2))
        >>> x.tolist(), ladj.tolist()
        ([[1.0, 1.0]], [0.0])
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = check_dim(dim)
        self.log_scale = nn.Parameter(torch.zeros(self.dim))
        self.shift = nn.Parameter(torch.zeros(self.dim))

    def forward(self, z, context=None):
        self._check(z, "z")
        x = z * self.log_scale.exp() + self.shift
        return x, self.log_scale.sum().expand(z.shape[0])

    def inverse(self, x, context=None):
        self._check(x, "x")
        z = (x - self.shift) * torch.exp(-self.log_scale)
        return z, (-self.log_scale.sum()).expand(x.shape[0])


class LULinear(Bijection):
    r"""An invertible linear map :math:`x = W z + b` with :math:`W = P L U`.

    ``L`` is unit lower triangular, ``U`` upper triangular with diagonal
    :math:`\mathrm{sign}_i \, e^{\ell_i}`, so ``W`` is invertible for every value of the
    parameters and :math:`\log|\det W| = \sum_i \ell_i` (:math:`O(D)`).

    Args:
        dim: number of features.
        matrix: optional ``(dim, dim)`` matrix to start from (it is LU-factorized; a
            singular matrix raises ``ValueError``). By default a random rotation, which
            mixes all features and has log-det 0.
        bias: learn the offset ``b`` (starts at zero).

    Example:
        >>> import torch, flowbook
        >>> b = flowbook.LULinear(2, matrix=torch.tensor([[2., -1.], [2., 1.]]))
        >>> round(b.log_abs_det().exp().item(), 4)
        4.0
    """

    def __init__(self, dim: int, matrix: torch.Tensor | None = None, bias: bool = True):
        super().__init__()
        self.dim = check_dim(dim)
        if matrix is None:
            matrix, _ = torch.linalg.qr(torch.randn(self.dim, self.dim))
        matrix = torch.as_tensor(matrix, dtype=torch.get_default_dtype())
        if matrix.shape != (self.dim, self.dim):
            raise ValueError(f"matrix must have shape ({self.dim}, {self.dim}), got {tuple(matrix.shape)}")
        P, L, U = torch.linalg.lu(matrix.double())
        diag = U.diagonal()
        if (diag.abs() < 1e-12 * max(1.0, matrix.abs().max().item())).any() or not torch.isfinite(U).all():
            raise ValueError("matrix is singular (det = 0); a linear flow needs an invertible matrix")
        self.register_buffer("perm", P.to(matrix.dtype))
        self.register_buffer("sign", diag.sign().to(matrix.dtype))
        self.lower = nn.Parameter(L.tril(-1).to(matrix.dtype))
        self.upper = nn.Parameter(U.triu(1).to(matrix.dtype))
        self.log_diag = nn.Parameter(diag.abs().log().to(matrix.dtype))
        self.bias = nn.Parameter(torch.zeros(self.dim, dtype=matrix.dtype)) if bias else None
        eye = torch.eye(self.dim, dtype=matrix.dtype)
        self.register_buffer("_eye", eye)

    def _factors(self):
        L = self.lower.tril(-1) + self._eye
        U = self.upper.triu(1) + torch.diag(self.sign * self.log_diag.exp())
        return L, U

    def matrix(self) -> torch.Tensor:
        """The dense ``W = P L U`` (for display and tests; the layer never forms it to invert)."""
        L, U = self._factors()
        return self.perm @ L @ U

    def log_abs_det(self) -> torch.Tensor:
        """:math:`\\log|\\det W|` in O(D)."""
        return self.log_diag.sum()

    def forward(self, z, context=None):
        self._check(z, "z")
        L, U = self._factors()
        x = (z @ U.T @ L.T) @ self.perm.T  # W z row-wise, without forming W (O(B D^2))
        if self.bias is not None:
            x = x + self.bias
        return x, self.log_abs_det().expand(z.shape[0])

    def inverse(self, x, context=None):
        self._check(x, "x")
        if self.bias is not None:
            x = x - self.bias
        L, U = self._factors()
        # Solve P L U z = x column-wise: two triangular solves, no matrix inverse.
        y = (x @ self.perm).T  # P^T x, as columns
        y = torch.linalg.solve_triangular(L, y, upper=False, unitriangular=True)
        z = torch.linalg.solve_triangular(U, y, upper=True).T
        return z, (-self.log_abs_det()).expand(x.shape[0])


class Permutation(Bijection):
    """Reorder features: ``x = z[:, perm]``. Volume preserving (log-det 0).

    Raises ``ValueError`` if ``perm`` is not a permutation of ``0..D-1``.
    """

    def __init__(self, perm):
        super().__init__()
        perm = torch.as_tensor(perm, dtype=torch.long)
        if perm.dim() != 1 or perm.numel() == 0:
            raise ValueError(f"perm must be a non-empty 1-D sequence of indices, got shape {tuple(perm.shape)}")
        if not torch.equal(perm.sort().values, torch.arange(perm.numel())):
            raise ValueError(f"perm must be a permutation of 0..{perm.numel() - 1}, got {perm.tolist()}")
        self.dim = perm.numel()
        self.register_buffer("perm", perm)
        self.register_buffer("inv_perm", perm.argsort())

    def forward(self, z, context=None):
        self._check(z, "z")
        return z[:, self.perm], z.new_zeros(z.shape[0])

    def inverse(self, x, context=None):
        self._check(x, "x")
        return x[:, self.inv_perm], x.new_zeros(x.shape[0])


class ReversePermutation(Permutation):
    """Reverse the order of the features, the usual glue between autoregressive layers."""

    def __init__(self, dim: int):
        super().__init__(torch.arange(check_dim(dim) - 1, -1, -1))
