r"""Energy-based models on binary vectors: the fully visible Boltzmann machine.

An energy-based model assigns every configuration an energy and turns it into a probability with

.. math:: P(y) = \frac{1}{Z}\exp\!\big(-E(y)/T\big), \qquad Z = \sum_{y'} \exp\!\big(-E(y')/T\big).

The sum defining :math:`Z` runs over all :math:`2^n` binary states, which is why it is computed
here only by brute-force enumeration for ``n <= MAX_ENUM`` (= 20, about a million states) and
refused beyond. The RBM (``flowbook.energy.rbm``) reuses the helpers of this module.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..validation import check_binary, check_count, check_dim, check_tensor

__all__ = ["BoltzmannMachine", "MAX_ENUM", "all_states", "bernoulli"]

MAX_ENUM = 20  # 2^20 ~ 1e6 states: the largest brute-force sum we allow
_CHUNK = 2**16  # states per chunk, so enumeration memory stays bounded


def bernoulli(p: torch.Tensor, generator=None) -> torch.Tensor:
    """0/1 draws with probabilities ``p`` (same dtype and device), from a CPU ``generator`` if given."""
    return (torch.rand(p.shape, generator=generator, dtype=p.dtype).to(p.device) < p).to(p.dtype)


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

    with ``W`` symmetric and zero on the diagonal **by construction**: the parameter is
    ``weight_upper``, the :math:`n(n-1)/2` entries :math:`w_{ij}, i < j` (in ``torch.triu_indices``
    order), and ``weight`` is the matrix built from it on every access, so no optimizer step (or
    weight decay, or direct write) can make ``W`` asymmetric or give it a diagonal. Set it with
    ``set_weight``. Flipping one unit changes the energy by
    :math:`\sum_j w_{ji} y_j + b_i`, so the Gibbs conditional is
    :math:`P(y_i = 1 \mid y_{-i}) = \sigma\big((\sum_j w_{ji} y_j + b_i)/T\big)`.
    The log-likelihood gradient is (data statistics - model statistics) / T:
    :math:`\partial \bar\ell / \partial w_{ij} = (\langle y_i y_j\rangle_\text{data}
    - \langle y_i y_j\rangle_\text{model})/T`, the gradient with respect to ``weight_upper``.

    Args:
        features: number of units n (exact ``log_partition`` needs ``n <= 20``).
        temperature: ``T > 0``; high T flattens the distribution, low T sharpens it.

    Example:
        >>> import torch, flowbook
        >>> bm = flowbook.BoltzmannMachine(5)
        >>> bm.log_prob(torch.ones(2, 5)).exp()  # all parameters zero: uniform, 1/32
        tensor([0.0312, 0.0312], grad_fn=<ExpBackward0>)
    """

    def __init__(self, features: int, temperature: float = 1.0):
        super().__init__()
        self.features = check_dim(features, "features")
        if not (isinstance(temperature, (int, float)) and temperature > 0 and math.isfinite(temperature)):
            raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
        self.temperature = float(temperature)
        rows, cols = torch.triu_indices(self.features, self.features, 1)
        self.register_buffer("_rows", rows, persistent=False)
        self.register_buffer("_cols", cols, persistent=False)
        self.weight_upper = nn.Parameter(torch.zeros(len(rows)))
        self.bias = nn.Parameter(torch.zeros(self.features))

    @property
    def weight(self) -> torch.Tensor:
        """``W``: symmetric with zero diagonal, built from ``weight_upper`` (differentiable)."""
        w = self.weight_upper.new_zeros(self.features, self.features)
        w = w.index_put((self._rows, self._cols), self.weight_upper)
        return w + w.T

    @torch.no_grad()
    def randomize(self, scale: float = 1.0, generator: torch.Generator | None = None):
        """Set ``W`` (symmetric, zero diagonal) and ``b`` to Gaussian values of std ``scale``."""
        a = torch.randn(self.features, self.features, generator=generator, dtype=self.bias.dtype)
        self.set_weight(scale * a)
        self.bias.copy_(scale * torch.randn(self.features, generator=generator, dtype=self.bias.dtype))
        return self

    @torch.no_grad()
    def set_weight(self, w: torch.Tensor):
        """Store the symmetric, zero-diagonal part of ``w``: (w + w^T)/2 with the diagonal dropped."""
        check_tensor(w, "w", self.features)
        if w.shape[0] != self.features:
            raise ValueError(f"w must have shape ({self.features}, {self.features}), got {tuple(w.shape)}")
        w = (w + w.T) / 2
        self.weight_upper.copy_(w[self._rows, self._cols])

    def energy(self, y: torch.Tensor) -> torch.Tensor:
        """:math:`E(y) = -\\tfrac12 y^\\top W y - b^\\top y` for each row, shape ``(batch,)``."""
        return -0.5 * ((y @ self.weight) * y).sum(1) - y @ self.bias

    def log_partition(self) -> torch.Tensor:
        """Exact :math:`\\log Z` by summing over all ``2^n`` states (``n <= 20``)."""
        check_enumerable(self.features)
        parts = [torch.logsumexp(-self.energy(s) / self.temperature, 0)
                 for s in state_chunks(self.features, self.bias)]
        return torch.logsumexp(torch.stack(parts), 0)

    def log_prob(self, y: torch.Tensor) -> torch.Tensor:
        """Exact :math:`\\log P(y)` of binary rows ``y`` (enumerates Z, so ``n <= 20``)."""
        y = check_binary(y, self.features, "y", self.bias.dtype)
        return -self.energy(y) / self.temperature - self.log_partition()

    def conditional(self, y: torch.Tensor) -> torch.Tensor:
        """``(batch, n)``: entry ``i`` is :math:`P(y_i = 1 \\mid y_{-i})` (W has zero diagonal)."""
        y = check_binary(y, self.features, "y", self.bias.dtype)
        return torch.sigmoid((y @ self.weight + self.bias) / self.temperature)

    @torch.no_grad()
    def gibbs(self, y: torch.Tensor, sweeps: int = 1, generator: torch.Generator | None = None):
        """Run ``sweeps`` sequential Gibbs sweeps (units in order 0..n-1) on every row of ``y``.

        Units must be updated one at a time: each conditional depends on all the others.
        """
        y = check_binary(y, self.features, "y", self.bias.dtype)
        sweeps = check_count(sweeps, "sweeps")
        y = y.clone()
        w, b, t = self.weight, self.bias, self.temperature
        for _ in range(sweeps):
            for i in range(self.features):
                y[:, i] = bernoulli(torch.sigmoid((y @ w[:, i] + b[i]) / t), generator)
        return y

    @torch.no_grad()
    def sample(self, n: int, sweeps: int = 100, generator: torch.Generator | None = None):
        """``n`` approximate samples: ``sweeps`` Gibbs sweeps from uniform random states."""
        n = check_count(n, "n")
        return self.gibbs(bernoulli(self.bias.new_full((n, self.features), 0.5), generator), sweeps, generator)

    @torch.no_grad()
    def probs(self) -> torch.Tensor:
        """All ``2^n`` probabilities, in the order of ``all_states(n)``."""
        return (-self.energy(all_states(self.features, like=self.bias)) / self.temperature
                - self.log_partition()).exp()

    @torch.no_grad()
    def exact_moments(self):
        """Model statistics :math:`\\langle y y^\\top\\rangle` and :math:`\\langle y\\rangle` by enumeration."""
        log_z = self.log_partition()
        second = self.bias.new_zeros(self.features, self.features)
        first = self.bias.new_zeros(self.features)
        for s in state_chunks(self.features, self.bias):
            p = (-self.energy(s) / self.temperature - log_z).exp()
            second += (s * p[:, None]).T @ s
            first += p @ s
        return second, first

    def _grad(self, data, second, first):
        ss = data.T @ data / len(data)
        gw = (ss - second) / self.temperature
        gw = gw - torch.diag(torch.diag(gw))  # the diagonal is fixed at zero, not learned
        return {"weight": gw, "weight_upper": gw[self._rows, self._cols], "bias": (data.mean(0) - first) / self.temperature}

    @torch.no_grad()
    def grad_from_samples(self, data: torch.Tensor, samples: torch.Tensor) -> dict:
        """The log-likelihood gradient with the model statistics estimated from ``samples``.

        (data statistics - sample statistics) / T; with exact samples from the model it is an
        unbiased estimate of ``exact_grad(data)``, with short Gibbs chains it is CD's estimate.
        """
        data = check_binary(data, self.features, "data", self.bias.dtype)
        samples = check_binary(samples, self.features, "samples", self.bias.dtype)
        return self._grad(data, samples.T @ samples / len(samples), samples.mean(0))

    @torch.no_grad()
    def exact_grad(self, data: torch.Tensor) -> dict:
        """Exact gradient of the mean log-likelihood: (data stats - model stats) / T.

        Returns ``{"weight": (n, n), "weight_upper": (n(n-1)/2,), "bias": (n,)}``; entry ``(i, j)``
        of ``weight`` is the derivative with respect to the single tied parameter
        :math:`w_{ij} = w_{ji}`, and ``weight_upper`` and ``bias`` are exactly the autograd gradients
        of the mean ``log_prob`` with respect to the parameters of those names.
        """
        data = check_binary(data, self.features, "data", self.bias.dtype)
        return self._grad(data, *self.exact_moments())

    @torch.no_grad()
    def sampled_grad(self, data: torch.Tensor, k: int = 1, chains: torch.Tensor | None = None,
                     generator: torch.Generator | None = None) -> dict:
        """Contrastive-divergence estimate: model statistics from ``k`` Gibbs sweeps.

        The chains start at ``data`` (CD-k) unless ``chains`` is given (persistent CD: pass the
        previous call's ``"chains"`` back in). Biased for small ``k``, cheap for any ``n``.
        """
        data = check_binary(data, self.features, "data", self.bias.dtype)
        k = check_count(k, "k", 1)
        start = data if chains is None else chains
        y = self.gibbs(start, k, generator)
        g = self.grad_from_samples(data, y)
        g["chains"] = y
        return g
