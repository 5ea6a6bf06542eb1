"""Base distributions. They are modules holding buffers, so ``flow.to(device)`` moves them."""
from __future__ import annotations

import math

import torch
from torch import nn

from .core import check_event
from .validation import check_count, check_dim, check_features

__all__ = ["StandardNormal", "BoxUniform", "MixtureBase", "gaussian_log_prob", "mixture_log_prob", "mixture_rsample"]


class StandardNormal(nn.Module):
    r"""The standard normal :math:`\mathcal N(0, I_D)`, the usual base of a flow.

    .. math:: \log p(z) = -\tfrac12 \lVert z\rVert^2 - \tfrac D2 \log 2\pi

    ``features`` is an int for vectors, or an event shape such as ``(C, H, W)`` for images:
    then ``sample(n)`` returns ``(n, C, H, W)`` and ``log_prob`` sums over the whole event.
    Attributes: ``event_shape`` (a tuple) and ``features`` (its product, D).

    Example:
        >>> import flowbook
        >>> base = flowbook.StandardNormal(3)
        >>> base.log_prob(base.sample(10)).shape
        torch.Size([10])
        >>> images = flowbook.StandardNormal((1, 8, 8))
        >>> images.sample(4).shape, images.features
        (torch.Size([4, 1, 8, 8]), 64)
    """

    def __init__(self, features):
        super().__init__()
        if isinstance(features, (tuple, list, torch.Size)):
            if len(features) == 0:
                raise ValueError("features must be a positive integer or a non-empty event shape, got ()")
            self.event_shape = tuple(check_dim(s, "features (an event shape)") for s in features)
        else:
            self.event_shape = (check_dim(features, "features"),)
        self.features = math.prod(self.event_shape)
        self._dims = tuple(range(-len(self.event_shape), 0))   # the event's axes, summed in log_prob
        # A buffer carries device and dtype: flow.to(...) / flow.double() move the base too.
        self.register_buffer("_anchor", torch.zeros(()))
        self._log_norm = 0.5 * self.features * math.log(2 * math.pi)

    def sample(self, n: int) -> torch.Tensor:
        """``n`` draws (``n`` a count: integer-like, >= 0), shape ``(n, *event_shape)``."""
        return torch.randn(check_count(n, "n"), *self.event_shape, device=self._anchor.device,
                           dtype=self._anchor.dtype)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        r""":math:`\log p(z)` of each ``z`` of shape ``(batch, *event_shape)``, shape ``(batch,)``."""
        if len(self._dims) == 1:
            check_features(z, self.features, "z")
        else:
            check_event(z, self.event_shape, "z")
        return -0.5 * z.pow(2).sum(self._dims) - self._log_norm

    def extra_repr(self):
        return f"features={self.features if len(self.event_shape) == 1 else self.event_shape}"


class BoxUniform(nn.Module):
    r"""Uniform density on the box :math:`[\text{low}, \text{high}]^D`: :math:`1/\prod_i(\text{high}_i-\text{low}_i)`.

    ``log_prob`` is :math:`-\infty` outside the box, so a flow with this base has a density with
    bounded support (as in the lectures' uniform-square example).

    Example:
        >>> import torch, flowbook
        >>> base = flowbook.BoxUniform([0.0, 0.0], [2.0, 2.0])
        >>> base.log_prob(torch.tensor([[1.0, 1.0], [3.0, 1.0]])).exp()
        tensor([0.2500, 0.0000])
    """

    def __init__(self, low, high):
        super().__init__()
        try:
            low, high = (torch.as_tensor(v, dtype=torch.get_default_dtype()) for v in (low, high))
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"low and high must be sequences of numbers (the box's corners), got {type(low).__name__} "
                            f"and {type(high).__name__}") from None
        if low.dim() != 1 or low.shape != high.shape:
            raise ValueError(f"low and high must be 1-D and of the same length, got {tuple(low.shape)} and {tuple(high.shape)}")
        if not (torch.isfinite(low).all() and torch.isfinite(high).all()):
            raise ValueError(f"low and high must be finite (a uniform density needs a bounded box), got {low.tolist()} "
                             f"and {high.tolist()}")
        if not (high > low).all():
            raise ValueError("high must be larger than low in every coordinate")
        self.features = check_dim(low.numel(), "len(low)")
        self.event_shape = (self.features,)
        self.register_buffer("low", low)
        self.register_buffer("high", high)

    def sample(self, n: int) -> torch.Tensor:
        """``n`` draws (``n`` a count: integer-like, >= 0), shape ``(n, features)``."""
        u = torch.rand(check_count(n, "n"), self.features, device=self.low.device, dtype=self.low.dtype)
        return self.low + u * (self.high - self.low)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        check_features(z, self.features, "z")
        inside = ((z >= self.low) & (z <= self.high)).all(-1)
        lp = -(self.high - self.low).log().sum()
        return torch.where(inside, lp, torch.full_like(lp, -math.inf))


_LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(z: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    r"""Log-density of the diagonal Gaussian :math:`\mathcal N(\mu, \mathrm{diag}\,\sigma^2)`, summed over the last axis.

    .. math:: \log \mathcal N(z; \mu, \mathrm{diag}\,\sigma^2)
              &= -\tfrac12 \sum_i \Bigl[\Bigl(\frac{z_i - \mu_i}{\sigma_i}\Bigr)^2 + 2\log\sigma_i + \log 2\pi\Bigr],\\
              \sigma &= e^{\mathtt{log\_std}}.

    The three tensors broadcast against each other (a ``(batch, 1, D)`` z against ``(k, D)``
    means gives the ``(batch, k)`` log-densities of every component).

    Example:
        >>> import torch, flowbook
        >>> zero = torch.zeros(2)
        >>> round(flowbook.gaussian_log_prob(zero, zero, zero).item(), 4)   # -log(2 pi)
        -1.8379
    """
    for name, v in (("z", z), ("mean", mean), ("log_std", log_std)):
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(v).__name__}")
    try:
        return -0.5 * (((z - mean) * torch.exp(-log_std)) ** 2 + 2 * log_std + _LOG_2PI).sum(-1)
    except RuntimeError as error:
        if "must match" not in str(error):
            raise
        raise ValueError(f"z, mean and log_std must broadcast against each other, got shapes {tuple(z.shape)}, "
                         f"{tuple(mean.shape)} and {tuple(log_std.shape)}") from None


def _mixture(means, log_std, logits, z=None) -> int:
    """The number of components k of a mixture's ``(k, D)`` means, after checking the other shapes (Python only)."""
    for name, v in (("means", means), ("log_std", log_std), ("logits", logits), ("z", z)):
        if v is not None and not (isinstance(v, torch.Tensor) and (v.is_floating_point() or name == "z")):
            raise TypeError(f"{name} must be a floating-point torch.Tensor, got "
                            f"{f'dtype {v.dtype}' if isinstance(v, torch.Tensor) else type(v).__name__}")
    if means.dim() != 2 or len(means) == 0:
        raise ValueError(f"means must have shape (k, features) with k >= 1 components, got {tuple(means.shape)}")
    k, d = means.shape
    if log_std.dim() > 2 or any(a not in (1, b) for a, b in zip(reversed(log_std.shape), (d, k))):
        raise ValueError(f"log_std must have shape ({k}, {d}) like means (or ({d},), shared), got {tuple(log_std.shape)}")
    if logits is not None and logits.shape != (k,):
        raise ValueError(f"logits must have shape ({k},), one per component of means, got {tuple(logits.shape)}")
    if z is not None and (z.dim() == 0 or z.shape[-1] != d):
        raise ValueError(f"z must have shape (batch, {d}) like the rows of means, got {tuple(z.shape)}")
    return k


def mixture_log_prob(z: torch.Tensor, means: torch.Tensor,
                     log_std: torch.Tensor, logits=None) -> torch.Tensor:
    r"""Log-density of a mixture of ``k`` diagonal Gaussians at every row of ``z``, shape ``(batch,)``.

    .. math:: \log p(z) &= \operatorname{logsumexp}_j \bigl[\log\pi_j + \log\mathcal N(z;\ \mu_j, \mathrm{diag}\,\sigma_j^2)\bigr],\\
              \pi &= \mathrm{softmax}(\text{logits})

    with ``means`` and ``log_std`` of shape ``(k, D)``; ``logits=None`` gives equal weights
    :math:`\pi_j = 1/k` (an aggregated posterior, a VampPrior). ``log_std`` may be ``(D,)``
    (shared); ``logits`` must be ``(k,)``; other shapes raise ``ValueError`` naming the argument.

    Example:
        >>> import torch, flowbook
        >>> means, log_std = torch.zeros(3, 2), torch.zeros(3, 2)   # three equal components
        >>> z = torch.randn(4, 2)
        >>> log_p = flowbook.distributions.mixture_log_prob(z, means, log_std)
        >>> torch.allclose(log_p, flowbook.StandardNormal(2).log_prob(z))
        True
    """
    k = _mixture(means, log_std, logits, z)
    if logits is None:
        log_weights = -math.log(k)                  # equal weights 1/k
    else:
        log_weights = torch.log_softmax(logits, -1)
    components = gaussian_log_prob(z.unsqueeze(-2), means, log_std)  # (n, k)
    return torch.logsumexp(log_weights + components, dim=-1)


def mixture_rsample(n: int, means: torch.Tensor, log_std: torch.Tensor,
                    logits: torch.Tensor | None = None) -> torch.Tensor:
    r"""``n`` draws from the mixture of :func:`mixture_log_prob`, shape ``(n, D)``.

    A component :math:`j \sim \pi` is drawn for each sample (without a gradient), then
    :math:`z = \mu_j + \sigma_j \odot \varepsilon`, :math:`\varepsilon \sim \mathcal N(0, I)`:
    differentiable in ``means`` and ``log_std`` (the reparameterization trick).

    Example:
        >>> import torch, flowbook
        >>> means, log_std = torch.zeros(3, 2), torch.zeros(3, 2)
        >>> flowbook.distributions.mixture_rsample(5, means, log_std).shape
        torch.Size([5, 2])
    """
    n, k = check_count(n, "n"), _mixture(means, log_std, logits)
    if logits is None:
        j = torch.randint(k, (n,), device=means.device)
    elif n:
        try:
            j = torch.multinomial(torch.softmax(logits.detach(), -1), n, replacement=True)
        except RuntimeError:
            raise ValueError(f"logits must be finite with at least one > -inf, got {logits.tolist()}") from None
    else:  # multinomial refuses n = 0
        j = torch.zeros(0, dtype=torch.long, device=means.device)
    return means[j] + torch.exp(log_std.expand_as(means)[j]) * torch.randn(n, means.shape[-1], device=means.device,
                                                           dtype=means.dtype)


class MixtureBase(nn.Module):
    r"""A learnable mixture of ``k`` diagonal Gaussians: a base for separated modes, or a VAE's prior.

    .. math:: p(z) = \sum_{j=1}^{k} \pi_j \prod_{i=1}^{D} \mathcal N(z_i;\ \mu_{ji}, \sigma_{ji}^2),
              \qquad \pi = \mathrm{softmax}(\text{logits}),\ \sigma = e^{\mathtt{log\_std}}.

    A continuous bijection cannot tear one Gaussian into separate islands; a base with ``k``
    modes gives the flow islands to start from. Every parameter (``logits``, ``means``,
    ``log_std``) is trained with the flow. The means start at ``N(0, I)`` draws (distinct
    components, so they can move apart), the standard deviations at 1, the weights equal.

    As a VAE's prior (``VAE(..., prior=MixtureBase(latent, k))``) it is a learned prior; fit it
    alone by maximum likelihood as a flow without layers, ``fit(Flow(prior, []), z)``.

    ``rsample(n)`` is differentiable in the means and standard deviations (the component of
    each sample is drawn without a gradient); ``sample(n)`` is the same without gradients.

    Args:
        features: number of features D.
        k: number of components.

    Example:
        >>> import torch, flowbook
        >>> base = flowbook.MixtureBase(2, k=3)
        >>> base.log_prob(base.sample(5)).shape
        torch.Size([5])
        >>> flow = flowbook.Flow(base, [flowbook.Affine(2)])
        >>> flow.log_prob(torch.zeros(4, 2)).shape
        torch.Size([4])
    """

    def __init__(self, features: int, k: int = 8):
        super().__init__()
        self.features, self.k = check_dim(features, "features"), check_dim(k, "k")
        self.logits = nn.Parameter(torch.zeros(self.k))
        self.means = nn.Parameter(torch.randn(self.k, self.features))
        self.log_std = nn.Parameter(torch.zeros(self.k, self.features))

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        check_features(z, self.features, "z")
        return mixture_log_prob(z, self.means, self.log_std, self.logits)

    def rsample(self, n: int) -> torch.Tensor:
        return mixture_rsample(n, self.means, self.log_std, self.logits)

    def sample(self, n: int) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(n)

    def extra_repr(self):
        return f"features={self.features}, k={self.k}"

