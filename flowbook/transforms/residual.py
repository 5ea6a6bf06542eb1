r"""Planar and radial flows (Rezende & Mohamed, 2015): residual layers with an O(D) log-det.

**Planar.** :math:`f(z) = z + \hat u\, h(w^\top z + b)` with :math:`h = \tanh`. Its Jacobian is the
identity plus a rank-one matrix, :math:`I + \hat u\, \psi(z)^\top` with
:math:`\psi(z) = h'(w^\top z + b)\, w`, so the matrix determinant lemma
:math:`\det(A + u v^\top) = (1 + v^\top A^{-1} u)\det A` gives

.. math:: \log\left|\det \frac{\partial f}{\partial z}\right| = \log\left|1 + \hat u^\top \psi(z)\right|.

Along :math:`w` the map is :math:`s \mapsto s + (w^\top \hat u)\tanh(s + b)`, increasing for
every :math:`s` iff :math:`w^\top \hat u \ge -1`. Raw parameters are mapped to the invertible set by

.. math:: \hat u = u + \bigl(m(w^\top u) - w^\top u\bigr)\frac{w}{\lVert w\rVert^2},
          \qquad m(a) = -1 + \operatorname{softplus}(a),

so that :math:`w^\top \hat u = m(w^\top u) > -1` (the division is by :math:`\lVert w\rVert^2`,
not :math:`\lVert w\rVert`). In floating point :math:`m(a)` rounds to -1 once :math:`a` is below about
-33.5 (float64) or -14.5 (float32), so the log-det never forms :math:`1 + m(a)`: with
:math:`h' = 1 - h^2` it is :math:`\log\bigl(h^2 + h'\operatorname{softplus}(a)\bigr)`, a sum of
positive terms. There is no closed-form inverse: planar flows are used in the
sampling direction only (``Flow.sample_and_log_prob``, reverse-KL training).

**Radial.** :math:`f(z) = z + \beta\, h(\alpha, r)(z - z_0)`, :math:`h = 1/(\alpha + r)`,
:math:`r = \lVert z - z_0\rVert`, with :math:`\alpha > 0` and :math:`\beta > -\alpha` by
parametrization. Points move along rays from :math:`z_0` (away for :math:`\beta > 0`, towards it
for :math:`\beta < 0`), and

.. math:: \log\left|\det \frac{\partial f}{\partial z}\right|
          = (D - 1)\log(1 + \beta h) + \log\!\left(1 + \frac{\beta\alpha}{(\alpha + r)^2}\right).

The radius map :math:`r \mapsto r(1 + \beta h)` is a quadratic to undo, so ``Radial`` has an exact inverse.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..core import Bijection
from ..nn import mlp
from ..validation import check_context, check_dim, check_features, dtype_error

__all__ = ["Planar", "Radial"]


def _inv_softplus(v: torch.Tensor) -> torch.Tensor:
    """The raw value whose softplus is ``v`` (> 0)."""
    return v + torch.log(-torch.expm1(-v))


def _vector(value, dim, name, default):
    v = default if value is None else torch.as_tensor(value, dtype=torch.get_default_dtype())
    if v.shape != (dim,):
        raise ValueError(f"{name} must have shape ({dim},), got {tuple(v.shape)}")
    if not torch.isfinite(v).all():
        raise ValueError(f"{name} must hold finite numbers, got {v.tolist()}")
    return v.clone()


def check_amortized_context(layer, context, n: int) -> None:
    """Raise unless ``context`` is the ``(n, context_features)`` input an amortized ``layer`` needs."""
    if context is None:
        raise ValueError(f"this {type(layer).__name__} layer is amortized (context_features="
                         f"{layer.context_features}): pass context of shape (batch, {layer.context_features})")
    check_features(context, layer.context_features, "context")
    if context.shape[0] != n:
        raise ValueError(f"context has {context.shape[0]} rows, expected {n} (one per row of z)")
    dtype = next(layer.parameters()).dtype
    if context.dtype != dtype:
        raise dtype_error(context, "context", dtype, type(layer).__name__)


class Planar(Bijection):
    r"""Planar layer :math:`x = z + \hat u \tanh(w^\top z + b)`, direct or amortized.

    Args:
        features: number of features D.
        u, w, b: optional initial raw parameters (default: small random ``u``, ``w`` of norm
            about 1, ``b = 0``).
        context_features: if > 0, the layer is *amortized*: a small network of the conditioning
            input adds a per-row offset to the raw ``(u, w, b)``. Its last layer starts at zero,
            so a fresh amortized layer equals the direct layer with the same raw parameters.
        hidden: width of that network.
        constrain: apply the :math:`\hat u` reparametrization (default). ``constrain=False`` uses
            the raw ``u`` as is, which can fold the space; it exists to show why the constraint matters.

    Example:
        >>> import torch, flowbook
        >>> layer = flowbook.Planar(2, u=[-3.0, 0.0], w=[1.0, 0.0])
        >>> (layer.u_hat() @ layer.w).item() > -1     # the raw u^T w = -3 would fold the plane
        True
        >>> z = torch.randn(5, 2, dtype=torch.float64)
        >>> x, logabsdet = layer.double()(z)
        >>> torch.allclose(logabsdet, flowbook.logabsdet(layer, z))
        True
    """

    def __init__(self, features: int, u=None, w=None, b=None, context_features: int = 0,
                 hidden: int = 32, constrain: bool = True):
        super().__init__()
        self.features = d = check_dim(features)
        self.u = nn.Parameter(_vector(u, d, "u", 0.1 * torch.randn(d) / math.sqrt(d)))
        self.w = nn.Parameter(_vector(w, d, "w", torch.randn(d) / math.sqrt(d)))
        self.b = nn.Parameter(torch.as_tensor(0.0 if b is None else float(b)))
        if not isinstance(constrain, bool):
            raise TypeError(f"constrain must be True or False, got {constrain!r}")
        self.constrain = constrain
        self.context_features = 0 if not context_features else check_dim(context_features, "context_features")
        if self.context_features:
            # zero last layer: (u, w, b) start at the shared ones for every context
            self.net = mlp(self.context_features, 2 * d + 1, hidden, depth=1, activation=nn.Tanh)

    @staticmethod
    def constrain_u(u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        r""":math:`\hat u = u + (m(w^\top u) - w^\top u)\, w/\lVert w\rVert^2`, so :math:`w^\top\hat u > -1`.

        Works on ``(D,)`` or ``(batch, D)`` tensors. Where ``w = 0`` the layer is the translation
        :math:`z + u\tanh(b)`, invertible for every ``u``, and ``u`` is returned unchanged (no 0/0).
        """
        wu = (w * u).sum(-1, keepdim=True)
        m = -1 + F.softplus(wu)
        # w = 0 makes the layer the translation z + u tanh(b), invertible for every u: keep u there
        # (the double where keeps the gradient finite instead of dividing by |w|^2 = 0).
        norm2 = w.pow(2).sum(-1, keepdim=True)
        nonzero = norm2 > 0
        return torch.where(nonzero, u + (m - wu) * w / torch.where(nonzero, norm2, 1.0), u)

    @staticmethod
    def one_plus_wu_hat(u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        r""":math:`1 + w^\top\hat u = \operatorname{softplus}(w^\top u)` from the raw ``u``, shape ``(..., 1)``.

        The same number as ``1 + w^T constrain_u(u, w)``, without the sum that rounds to 0 once
        :math:`w^\top u` is below about -33.5 (float64); 1 where ``w = 0`` (``u`` is kept there).
        """
        wu = (w * u).sum(-1, keepdim=True)
        return F.softplus(wu).masked_fill(w.pow(2).sum(-1, keepdim=True) == 0, 1.0)

    @torch.no_grad()
    def start_as_identity(self) -> "Planar":
        r"""Set ``u`` so that :math:`\hat u = 0`: the layer (and, fresh, its amortized version) is the identity.

        With :math:`u = a_0 w/\lVert w\rVert^2`, :math:`a_0 = \log(e - 1)`, the constraint gives
        :math:`m(w^\top u) = -1 + \operatorname{softplus}(a_0) = 0`, so :math:`\hat u = 0`. A ``w`` of 0
        (where that division fails and the constraint is singular) is set to the first unit vector
        first. Returns the layer.

        Example:
            >>> import torch, flowbook
            >>> layer = flowbook.Planar(2).start_as_identity()
            >>> z = torch.randn(3, 2)
            >>> torch.allclose(layer(z)[0], z, atol=1e-6)
            True
        """
        if self.w.pow(2).sum() < torch.finfo(self.w.dtype).eps:
            self.w.zero_()[0] = 1.0
        self.u.copy_(math.log(math.e - 1) * self.w / self.w.pow(2).sum())
        return self

    def u_hat(self) -> torch.Tensor:
        """The vector ``u`` the direct layer actually uses (constrained unless ``constrain=False``)."""
        return self.constrain_u(self.u, self.w) if self.constrain else self.u

    def parameters_for(self, context=None, n: int = 1, margin: bool = False):
        r"""``(u_hat, w, b)`` with shapes ``(n or 1, D), (n or 1, D), (n or 1, 1)``, per context row.

        With ``margin``, also the ``(n or 1, 1)`` margin :math:`1 + w^\top\hat u`, computed as
        :math:`\operatorname{softplus}(w^\top u)` of the raw ``u`` (not from the sum, which can round to 0).
        """
        u, w, b = self.u.unsqueeze(0), self.w.unsqueeze(0), self.b.reshape(1, 1)
        if not self.context_features:
            check_context(context, 0, "Planar")
        else:
            check_amortized_context(self, context, n)
            d = self.features
            out = self.net(context)
            u, w, b = u + out[:, :d], w + out[:, d:2 * d], b + out[:, 2 * d:]
        if not self.constrain:
            return (u, w, b, 1 + (w * u).sum(-1, keepdim=True)) if margin else (u, w, b)
        one_plus_wu = self.one_plus_wu_hat(u, w)
        u = self.constrain_u(u, w)
        return (u, w, b, one_plus_wu) if margin else (u, w, b)

    def forward(self, z, context=None):
        self.check_input(z, "z")
        u, w, b, one_plus_wu = self.parameters_for(context, z.shape[0],
                                                   margin=True)
        h = torch.tanh((z * w).sum(-1, keepdim=True) + b)
        x = z + u * h
        # det(I + u psi^T) = 1 + u^T psi, psi = h'(a) w, h' = 1 - tanh^2: that is
        # 1 + h' w^T u = h^2 + h' (1 + w^T u), a sum of positive terms
        det = h.pow(2) + (1 - h.pow(2)) * one_plus_wu
        return x, det.abs().log().squeeze(-1)

    def inverse(self, x, context=None):
        raise NotImplementedError(
            "Planar has no closed-form inverse, so it cannot evaluate log_prob of given points; "
            "use it in the sampling direction: Flow.sample_and_log_prob (e.g. flowbook.fit_reverse_kl)"
        )

    def extra_repr(self):
        amortized = f", context_features={self.context_features}" if self.context_features else ""
        return f"features={self.features}{amortized}, constrain={self.constrain}"


class Radial(Bijection):
    r"""Radial layer :math:`x = z + \beta (z - z_0)/(\alpha + \lVert z - z_0\rVert)`.

    ``alpha = softplus(alpha_raw) > 0`` and ``beta = -alpha + softplus(beta_raw) > -alpha``,
    which makes the map invertible for every raw value.

    Args:
        features: number of features D.
        z0, alpha, beta: optional initial values (default: ``z0`` small random, ``alpha = 1``,
            ``beta = 0``, i.e. the identity up to the choice of ``z0``).

    Example:
        >>> import torch, flowbook
        >>> layer = flowbook.Radial(2, z0=[0.0, 0.0], alpha=0.5, beta=-0.4).double()
        >>> report = flowbook.check_bijection(layer, torch.randn(16, 2))
        >>> report.roundtrip_error < 1e-10
        True
    """

    def __init__(self, features: int, z0=None, alpha: float | None = None, beta: float | None = None):
        super().__init__()
        self.features = d = check_dim(features)
        alpha = 1.0 if alpha is None else float(alpha)
        beta = 0.0 if beta is None else float(beta)
        if not alpha > 0 or not beta > -alpha:
            raise ValueError(f"need alpha > 0 and beta > -alpha, got alpha={alpha}, beta={beta}")
        self.z0 = nn.Parameter(_vector(z0, d, "z0", 0.1 * torch.randn(d)))
        self.alpha_raw = nn.Parameter(_inv_softplus(torch.tensor(alpha)))
        self.beta_raw = nn.Parameter(_inv_softplus(torch.tensor(beta + alpha)))

    @property
    def alpha(self) -> torch.Tensor:
        return F.softplus(self.alpha_raw)

    @property
    def beta(self) -> torch.Tensor:
        return -self.alpha + F.softplus(self.beta_raw)

    def _logabsdet(self, r, alpha, beta):
        bh = beta / (alpha + r)
        return (self.features - 1) * torch.log1p(bh) + torch.log1p(beta * alpha / (alpha + r).pow(2))

    def forward(self, z, context=None):
        self.check_input(z, "z")
        alpha, beta = self.alpha, self.beta
        diff = z - self.z0
        r = diff.norm(dim=-1, keepdim=True)
        x = z + beta / (alpha + r) * diff
        return x, self._logabsdet(r, alpha, beta).squeeze(-1)

    def inverse(self, x, context=None):
        self.check_input(x, "x")
        alpha, beta = self.alpha, self.beta
        diff = x - self.z0
        rx = diff.norm(dim=-1, keepdim=True)
        # r (1 + beta/(alpha + r)) = rx  <=>  r^2 + B r - alpha rx = 0 with B = alpha + beta - rx;
        # take the positive root in the form that avoids cancellation.
        B = alpha + beta - rx
        disc = torch.sqrt(B.pow(2) + 4 * alpha * rx)
        r = torch.where(B > 0, 2 * alpha * rx / (B + disc), (disc - B) / 2)
        z = self.z0 + diff / (1 + beta / (alpha + r))
        return z, -self._logabsdet(r, alpha, beta).squeeze(-1)

    def extra_repr(self):
        return f"features={self.features}"
