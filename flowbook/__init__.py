"""flowbook: the normalizing-flow package behind the flowbook lecture companion.

Convention (as in ``torch.distributions``): a bijection's ``forward`` is the generative map
z -> x returning ``(x, log|det dx/dz|)``; ``inverse`` returns ``(z, log|det dz/dx|)``;
``Flow.log_prob`` uses ``inverse``.

Example:
    >>> import torch, flowbook
    >>> flow = flowbook.Flow(flowbook.StandardNormal(2), [flowbook.Affine(2), flowbook.LULinear(2)])
    >>> flow.log_prob(torch.randn(4, 2)).shape
    torch.Size([4])
"""
from . import data
from .core import Bijection, Compose, Flow, Inverse
from .distributions import StandardNormal
from .jacobian import BijectionReport, check_bijection, jacobian, logabsdet
from .linear import Affine, LULinear, Permutation, ReversePermutation
from .train import History, evaluate_nll, fit
from .utils import device, seed

__version__ = "0.1.0"

__all__ = [
    "Bijection", "Compose", "Flow", "Inverse", "StandardNormal",
    "Affine", "LULinear", "Permutation", "ReversePermutation",
    "jacobian", "logabsdet", "check_bijection", "BijectionReport",
    "fit", "evaluate_nll", "History", "device", "seed", "data",
]
