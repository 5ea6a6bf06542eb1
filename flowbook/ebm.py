r"""Energy-based models on binary vectors: the fully visible Boltzmann machine.

An energy-based model assigns every configuration an energy and turns it into a probability with

.. math:: P(y) = \frac{1}{Z}\exp\!\big(-E(y)/T\big), \qquad Z = \sum_{y'} \exp\!\big(-E(y')/T\big).

The sum defining :math:`Z` runs over all :math:`2^n` binary states, which is why it is computed
here only by brute-force enumeration for ``n <= MAX_ENUM`` (= 20, about a million states) and
refused beyond. The RBM (``flowbook.rbm``) reuses the helpers of this module.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .utils import check_dim, check_features

__all__ = ["BoltzmannMachine", "MAX_ENUM", "all_states", "check_binary", "bernoulli"]

MAX_ENUM = 20  # 2^20 ~ 1e6 states: the largest brute-force sum we allow
_CHUNK = 2**16  # states per chunk, so enumeration memory stays bounded


def bernoulli(p: torch.Tensor, generator=None) -> torch.Tensor:
    """0/1 draws with probabilities ``p`` (same dtype and device), from a CPU ``generator`` if given."""
    return (torch.rand(p.shape, generator=generator, dtype=p.dtype).to(p.device) < p).to(p.dtype)


def check_binary(y: torch.Tensor, dim: int, name: str = "y") -> None:
    """Raise ``ValueError`` unless ``y`` is a ``(batch, dim)`` tensor of 0s and 1s."""
    check_features(y, dim, name)
    if not ((y == 0) | (y == 1)).all():
        bad = (~((y == 0) | (y == 1))).sum().item()
        raise ValueError(f"{name} must be binary (entries 0 or 1); found {bad} other value(s), "
                         "e.g. binarize with (x > threshold).float()")


def check_enumerable(n: int, name: str = "n") -> None:
    """Raise ``ValueError`` if ``2^n`` states are too many to sum over."""
    if n > MAX_ENUM:
        raise ValueError(f"{name}={n} is too large for exact enumeration of 2^{n} states "
                         f"(the limit is {name} <= {MAX_ENUM}); use a sampling estimate instead")


def all_states(n: int, start: int = 0, stop: int | None = None, like: torch.Tensor | None = None):
    """The binary vectors with integer codes ``start..stop-1`` as rows (bit 0 = first unit).

    Example:
        >>> all_states(2).tolist()
        [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    """
    check_enumerable(n)
    stop = 2**n if stop is None else stop
    dev = like.device if like is not None else None
    dtype = like.dtype if like is not None else torch.get_default_dtype()
    codes = torch.arange(start, stop, device=dev)
    return ((codes.unsqueeze(1) >> torch.arange(n, device=dev)) & 1).to(dtype)


def state_chunks(n: int, like: torch.Tensor):
    """Yield all ``2^n`` binary states in chunks of at most ``2^16`` rows."""
    check_enumerable(n)
    for start in range(0, 2**n, _CHUNK):
        yield all_states(n, start, min(2**n, start + _CHUNK), like)


class BoltzmannMachine(nn.Module):
    r"""A fully visible Boltzmann machine on ``n`` binary units :math:`y \in \{0,1\}^n`.

    .. math::
        E(y) = -\tfrac12 y^\top W y - b^\top y, \qquad P(y) = \exp(-E(y)/T)/Z,

    with ``W`` symmetric and zero on the diagonal. Flipping one unit changes the energy by
    :math:`\sum_j w_{ji} y_j + b_i`, so the Gibbs conditional is
    :math:`P(y_i = 1 \mid y_{-i}) = \sigma\big((\sum_j w_{ji} y_j + b_i)/T\big)`.
    The log-likelihood gradient is (data statistics - model statistics) / T:
    :math:`\partial \bar\ell / \partial w_{ij} = (\langle y_i y_j\rangle_\text{data}
    - \langle y_i y_j\rangle_\text{model})/T`.

    Args:
        n: number of units (exact ``log_partition`` needs ``n <= 20``).
        temperature: ``T > 0``; high T flattens the distribution, low T sharpens it.

    Example:
        >>> import torch, flowbook
        >>> bm = flowbook.BoltzmannMachine(5)
        >>> bm.log_prob(torch.ones(2, 5)).exp()  # all parameters zero: uniform, 1/32
        tensor([0.0312, 0.0312], grad_fn=<ExpBackward0>)
    """

    def __init__(self, n: int, temperature: float = 1.0):
        super().__init__()
        self.n = check_dim(n, "n")
        if not (isinstance(temperature, (int, float)) and temperature > 0 and math.isfinite(temperature)):
            raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
        self.temperature = float(temperature)
        self.weight = nn.Parameter(torch.zeros(self.n, self.n))
        self.bias = nn.Parameter(torch.zeros(self.n))

    @torch.no_grad()
    def randomize(self, scale: float = 1.0, generator: torch.Generator | None = None):
        """Set ``W`` (symmetric, zero diagonal) and ``b`` to Gaussian values of std ``scale``."""
        a = torch.randn(self.n, self.n, generator=generator, dtype=self.weight.dtype)
        self.set_weight(scale * a)
        self.bias.copy_(scale * torch.randn(self.n, generator=generator, dtype=self.bias.dtype))
        return self

    @torch.no_grad()
    def set_weight(self, w: torch.Tensor):
        """Store the symmetric, zero-diagonal part of ``w``: (w + w^T)/2 with the diagonal zeroed."""
        check_features(w, self.n, "w")
        w = (w + w.T) / 2
        self.weight.copy_(w - torch.diag(torch.diag(w)))

    def energy(self, y: torch.Tensor) -> torch.Tensor:
        """:math:`E(y) = -\\tfrac12 y^\\top W y - b^\\top y` for each row, shape ``(batch,)``."""
        return -0.5 * ((y @ self.weight) * y).sum(1) - y @ self.bias

    def log_partition(self) -> torch.Tensor:
        """Exact :math:`\\log Z` by summing over all ``2^n`` states (``n <= 20``)."""
        check_enumerable(self.n)
        parts = [torch.logsumexp(-self.energy(s) / self.temperature, 0)
                 for s in state_chunks(self.n, self.weight)]
        return torch.logsumexp(torch.stack(parts), 0)

    def log_prob(self, y: torch.Tensor) -> torch.Tensor:
        """Exact :math:`\\log P(y)` of binary rows ``y`` (enumerates Z, so ``n <= 20``)."""
        check_binary(y, self.n, "y")
        return -self.energy(y) / self.temperature - self.log_partition()

    def conditional(self, y: torch.Tensor) -> torch.Tensor:
        """``(batch, n)``: entry ``i`` is :math:`P(y_i = 1 \\mid y_{-i})` (W has zero diagonal)."""
        check_binary(y, self.n, "y")
        return torch.sigmoid((y @ self.weight + self.bias) / self.temperature)

    @torch.no_grad()
    def gibbs(self, y: torch.Tensor, sweeps: int = 1, generator: torch.Generator | None = None):
        """Run ``sweeps`` sequential Gibbs sweeps (units in order 0..n-1) on every row of ``y``.

        Units must be updated one at a time: each conditional depends on all the others.
        """
        check_binary(y, self.n, "y")
        if sweeps < 0:
            raise ValueError(f"sweeps must be >= 0, got {sweeps}")
        y = y.clone()
        w, b, t = self.weight, self.bias, self.temperature
        for _ in range(sweeps):
            for i in range(self.n):
                y[:, i] = bernoulli(torch.sigmoid((y @ w[:, i] + b[i]) / t), generator)
        return y

    @torch.no_grad()
    def sample(self, num: int, sweeps: int = 100, generator: torch.Generator | None = None):
        """``num`` approximate samples: ``sweeps`` Gibbs sweeps from uniform random states."""
        return self.gibbs(bernoulli(self.weight.new_full((num, self.n), 0.5), generator), sweeps, generator)

    @torch.no_grad()
    def probs(self) -> torch.Tensor:
        """All ``2^n`` probabilities, in the order of ``all_states(n)``."""
        return (-self.energy(all_states(self.n, like=self.weight)) / self.temperature
                - self.log_partition()).exp()

    @torch.no_grad()
    def exact_moments(self):
        """Model statistics :math:`\\langle y y^\\top\\rangle` and :math:`\\langle y\\rangle` by enumeration."""
        log_z = self.log_partition()
        second = self.weight.new_zeros(self.n, self.n)
        first = self.weight.new_zeros(self.n)
        for s in state_chunks(self.n, self.weight):
            p = (-self.energy(s) / self.temperature - log_z).exp()
            second += (s * p[:, None]).T @ s
            first += p @ s
        return second, first

    def _grad(self, data, second, first):
        ss = data.T @ data / len(data)
        gw = (ss - second) / self.temperature
        gw = gw - torch.diag(torch.diag(gw))  # the diagonal is fixed at zero, not learned
        return {"weight": gw, "bias": (data.mean(0) - first) / self.temperature}

    @torch.no_grad()
    def exact_grad(self, data: torch.Tensor) -> dict:
        """Exact gradient of the mean log-likelihood: (data stats - model stats) / T.

        Returns ``{"weight": (n, n), "bias": (n,)}``; entry ``(i, j)`` of ``weight`` is the
        derivative with respect to the single tied parameter :math:`w_{ij} = w_{ji}`.
        """
        check_binary(data, self.n, "data")
        return self._grad(data, *self.exact_moments())

    @torch.no_grad()
    def sampled_grad(self, data: torch.Tensor, k: int = 1, chains: torch.Tensor | None = None,
                     generator: torch.Generator | None = None) -> dict:
        """Contrastive-divergence estimate: model statistics from ``k`` Gibbs sweeps.

        The chains start at ``data`` (CD-k) unless ``chains`` is given (persistent CD: pass the
        previous call's ``"chains"`` back in). Biased for small ``k``, cheap for any ``n``.
        """
        check_binary(data, self.n, "data")
        start = data if chains is None else chains
        y = self.gibbs(start, k, generator)
        g = self._grad(data, y.T @ y / len(y), y.mean(0))
        g["chains"] = y
        return g
