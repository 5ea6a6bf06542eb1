r"""scikit-learn's bundled 8x8 digits (no download), split, dequantized, and scored in bits/dim."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Digits", "load_digits", "binarize", "dequantize", "bits_per_dim"]


@dataclass
class Digits:
    """scikit-learn's 8x8 digits (pixel values 0..16) with a fixed train/validation/test split.

    ``x_*`` hold the integer pixel values as floats, ``y_*`` the class labels. The test split is
    the same 297 images every chapter uses (``train_test_split(random_state=0)``); the
    validation images come out of the other 1500.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    levels: int = 17
    features: int = 64

    def dequantize(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        """Uniform dequantization to the unit cube: y = (x + u) / 17, u ~ U[0, 1)^64."""
        u = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        return (x + u) / self.levels

    def bits_per_dim(self, log_prob_y: torch.Tensor) -> float:
        """Bits per dimension on the original 0..16 scale from log-densities of y = (x+u)/17.

        The density of x + u is p_y / 17^D, so bits/dim = -log p_y / (D ln 2) + log2(17). Averaged
        over u this is an upper bound on the discrete code length of the integer pixels.
        """
        return (-log_prob_y.mean().item() / (self.features * math.log(2))) + math.log2(self.levels)


def load_digits(val_size: int = 200, seed: int = 0) -> Digits:
    """Load the bundled 8x8 digits (no download) and split them 1300 / 200 / 297 by default."""
    from sklearn.datasets import load_digits as _load
    from sklearn.model_selection import train_test_split

    data = _load()
    x, y = data.data.astype(np.float32), data.target
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=297, random_state=0)
    x_tr, x_va, y_tr, y_va = train_test_split(x_tr, y_tr, test_size=val_size, random_state=seed)
    t = lambda a, dt=torch.get_default_dtype(): torch.as_tensor(a, dtype=dt)
    return Digits(t(x_tr), t(y_tr, torch.long), t(x_va), t(y_va, torch.long), t(x_te), t(y_te, torch.long))


def binarize(x: torch.Tensor, threshold: float = 8.0) -> torch.Tensor:
    """Binary digits: 1 where a pixel (0..16) is at least ``threshold`` (half intensity), else 0.

    The one binarization every chapter uses (the VAE's Bernoulli decoder, the Boltzmann machines).

    Example:
        >>> import torch
        >>> binarize(torch.tensor([[0.0, 7.0, 8.0, 16.0]])).tolist()
        [[0.0, 0.0, 1.0, 1.0]]
    """
    return (x >= threshold).to(x.dtype)


# ----------------------------------------------------------------------------- any number of levels
def dequantize(x: torch.Tensor, levels: int, generator=None) -> torch.Tensor:
    r"""Uniform dequantization of integers ``x`` in ``{0, ..., levels-1}`` to the unit cube: :math:`y = (x + u)/K`.

    :math:`u \sim U[0, 1)^D`, K = ``levels`` (2 for binarized digits, 17 for the digits, 256 for
    8-bit images). ``Digits.dequantize(x)`` is ``dequantize(x, 17)``.

    Example:
        >>> import torch
        >>> y = dequantize(torch.tensor([[0.0, 1.0]]), levels=2)
        >>> bool((0 <= y[0, 0] < 0.5) and (0.5 <= y[0, 1] < 1))
        True
    """
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    return (x + u) / levels


def bits_per_dim(log_prob_y: torch.Tensor, features: int, levels: int) -> float:
    r"""Bits per dimension on the K-level scale from log-densities of :math:`y = (x + u)/K`.

    The density of :math:`v = x + u` on :math:`[0, K)^D` is :math:`p_y(v/K)/K^D`, so
    :math:`\text{bits/dim} = -\log p_y/(D \ln 2) + \log_2 K`, averaged over the rows. With u
    uniform its mean is an upper bound on the code length of the integers
    (:math:`-\log_2 P(x)/D`, see ``flowbook.dequantization``). ``levels=1`` converts log-probabilities
    of the integers themselves. ``Digits.bits_per_dim(lp)`` is ``bits_per_dim(lp, 64, 17)``.

    Example:
        >>> import math, torch
        >>> bits_per_dim(torch.zeros(5), features=64, levels=2)   # the uniform density on the cube: 1 bit
        1.0
    """
    return -log_prob_y.mean().item() / (features * math.log(2)) + math.log2(levels)

