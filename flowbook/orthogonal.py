r"""A QR-parametrized linear bijection: an orthogonal matrix from Householder reflections.

Lecture 003 lists two ways to parametrize an invertible matrix :math:`W` so that its
determinant is cheap: ``W = P L U`` (``flowbook.LULinear``) and ``W = Q R``. Here

.. math::
    Q = H_1 H_2 \cdots H_K, \qquad H_k = I - 2\,\frac{v_k v_k^\top}{v_k^\top v_k},

a product of Householder reflections (each orthogonal, :math:`|\det H_k| = 1`), and ``R`` is upper
triangular with diagonal :math:`\mathrm{sign}_i\,e^{\ell_i}`. Hence

.. math:: \log|\det W| = \log|\det Q| + \log|\det R| = 0 + \sum_i \ell_i \qquad (O(D)),

a reflection costs :math:`O(D)` per sample to apply, and the inverse
:math:`z = R^{-1} Q^\top (x - b)` needs the reflections in reverse order and one triangular solve.
"""
from __future__ import annotations

import torch
from torch import nn

from .core import Bijection
from .utils import check_dim

__all__ = ["QRLinear"]


class QRLinear(Bijection):
    r"""An invertible linear map :math:`x = Q R z + b` with ``Q`` a product of Householder reflections.

    Every value of the parameters gives an invertible ``W = QR`` (``R``'s diagonal is
    :math:`\pm e^{\ell_i} \neq 0`). With ``K`` reflections, :math:`\mathrm{sign}\det W =
    (-1)^K \prod_i \mathrm{sign}_i`; the orientation never matters for a density.

    Args:
        dim: number of features.
        num_reflections: ``K`` (default ``dim``: enough to reach every orthogonal matrix with
            determinant :math:`(-1)^K`).
        bias: learn the offset ``b`` (starts at zero).

    Starts as a random rotation/reflection (``R = I``), which mixes all features and has log-det 0.

    Example:
        >>> import torch, flowbook
        >>> from flowbook.orthogonal import QRLinear
        >>> b = QRLinear(3)
        >>> W = b.matrix()
        >>> torch.allclose(W.T @ W, torch.eye(3), atol=1e-5), b.log_abs_det().item()
        (True, 0.0)
        >>> z = torch.randn(4, 3)
        >>> x, ladj = b(z)
        >>> torch.allclose(b.inverse(x)[0], z, atol=1e-5), ladj.shape
        (True, torch.Size([4]))
    """

    def __init__(self, dim: int, num_reflections: int | None = None, bias: bool = True):
        super().__init__()
        self.dim = check_dim(dim)
        k = check_dim(self.dim if num_reflections is None else num_reflections, "num_reflections")
        self.vectors = nn.Parameter(torch.randn(k, self.dim))
        self.upper = nn.Parameter(torch.zeros(self.dim, self.dim))
        self.log_diag = nn.Parameter(torch.zeros(self.dim))
        self.register_buffer("sign", torch.ones(self.dim))
        self.bias = nn.Parameter(torch.zeros(self.dim)) if bias else None

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
        eye = torch.eye(self.dim, dtype=self.vectors.dtype, device=self.vectors.device)
        q = eye
        for u in self._units():
            q = q @ (eye - 2 * torch.outer(u, u))
        return q

    def matrix(self) -> torch.Tensor:
        """The dense ``W = Q R`` (the layer never forms it)."""
        return self.orthogonal() @ self._R()

    def log_abs_det(self) -> torch.Tensor:
        """:math:`\\log|\\det W| = \\sum_i \\ell_i` in O(D)."""
        return self.log_diag.sum()

    def forward(self, z, context=None):
        self._check(z, "z")
        y = z @ self._R().T  # R z, row-wise
        for u in self._units().flip(0):  # Q y = H_1(H_2(...H_K y)): the last reflection acts first
            y = self._reflect(y, u)
        if self.bias is not None:
            y = y + self.bias
        return y, self.log_abs_det().expand(z.shape[0])

    def inverse(self, x, context=None):
        self._check(x, "x")
        y = x - self.bias if self.bias is not None else x
        for u in self._units():  # Q^T = H_K ... H_1 (each H is its own inverse)
            y = self._reflect(y, u)
        z = torch.linalg.solve_triangular(self._R(), y.T, upper=True).T
        return z, (-self.log_abs_det()).expand(x.shape[0])
