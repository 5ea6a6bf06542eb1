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
from .distributions import BoxUniform, StandardNormal
from .jacobian import BijectionReport, check_bijection, jacobian, logabsdet
from .linear import Affine, LULinear, Permutation, ReversePermutation
from .train import History, evaluate_nll, fit
from .utils import device, seed

__version__ = "0.1.0"

__all__ = [
    "Bijection", "Compose", "Flow", "Inverse", "StandardNormal", "BoxUniform",
    "Affine", "LULinear", "Permutation", "ReversePermutation",
    "jacobian", "logabsdet", "check_bijection", "BijectionReport",
    "fit", "evaluate_nll", "History", "device", "seed", "data",
]

from . import nets
from .nets import mlp
__all__ += ["nets", "mlp"]

from .coupling import (AdditiveCoupling, AffineCoupling, Scaling, Squeeze, alternating_mask, channel_mask,
                       checkerboard_mask, half_mask, squeeze, unsqueeze)
from .normalization import ActNorm, BatchNorm
from .models import NICE, RealNVP
__all__ += ["AdditiveCoupling", "AffineCoupling", "Scaling", "Squeeze", "alternating_mask", "channel_mask",
            "checkerboard_mask", "half_mask", "squeeze", "unsqueeze", "ActNorm", "BatchNorm", "NICE", "RealNVP"]

from .made import MADE, MaskedLinear
from .autoregressive import IAF, MAF, MaskedAffineAutoregressive, reparametrized
__all__ += ["MADE", "MaskedLinear", "MaskedAffineAutoregressive", "MAF", "IAF", "reparametrized"]

from . import targets
from .planar import Planar, Radial
from .reverse_kl import ELBOEstimate, ReverseKLHistory, evaluate_elbo, fit_reverse_kl
__all__ += ["targets", "Planar", "Radial", "fit_reverse_kl", "evaluate_elbo", "ReverseKLHistory", "ELBOEstimate"]
from . import timing
from .elementwise import SinhArcsinh
from .orthogonal import QRLinear
__all__ += ["QRLinear", "SinhArcsinh", "timing"]
