"""flowbook: the normalizing-flow package behind the flowbook lecture companion.

Convention (as in ``torch.distributions``): a bijection's ``forward`` is the generative map
z -> x returning ``(x, log|det dx/dz|)``; ``inverse`` returns ``(z, log|det dz/dx|)``;
``Flow.log_prob`` uses ``inverse``.

Example:
    >>> import torch, flowbook
    >>> flow = flowbook.RealNVP(2)
    >>> flow.log_prob(torch.randn(4, 2)).shape
    torch.Size([4])
"""
from . import data, nets, targets, timing
# core: bijections, composition, flows, base distributions, the checker
from .core import Bijection, Compose, Flow, Inverse
from .distributions import BoxUniform, StandardNormal
from .jacobian import BijectionReport, check_bijection, jacobian, logabsdet
# layers
from .linear import Affine, LULinear, Permutation, ReversePermutation
from .orthogonal import QRLinear
from .elementwise import SinhArcsinh
from .coupling import (AdditiveCoupling, AffineCoupling, Partial, Scaling, Squeeze, alternating_mask, channel_mask,
                       checkerboard_mask, half_mask, squeeze, unsqueeze)
from .normalization import ActNorm, BatchNorm
from .made import MADE, MaskedLinear
from .autoregressive import IAF, MAF, MaskedAffineAutoregressive, reparametrized
from .planar import Planar, Radial
from .nets import mlp
# ready-made flows
from .models import NICE, MultiscaleRealNVP, RealNVP
# training
from .train import History, evaluate_nll, fit
from .reverse_kl import ELBOEstimate, ReverseKLHistory, evaluate_elbo, fit_reverse_kl
# beyond flows: VAEs and energy-based models
from .vae import (VAE, BernoulliDecoder, ELBOTerms, GaussianDecoder, GaussianEncoder, MixturePrior, VampPrior,
                  gaussian_kl, gaussian_log_prob, posterior_iaf)
from .surgery import AggregatedPosterior, Surgery, elbo_surgery, local_posterior_elbo
from .ebm import BoltzmannMachine
from .rbm import RBM
from .utils import device, randomize_parameters, seed

__version__ = "0.1.0"

__all__ = [
    "data", "nets", "targets", "timing", "plot",
    "Bijection", "Compose", "Flow", "Inverse", "StandardNormal", "BoxUniform",
    "jacobian", "logabsdet", "check_bijection", "BijectionReport",
    "Affine", "LULinear", "Permutation", "ReversePermutation", "QRLinear", "SinhArcsinh",
    "AdditiveCoupling", "AffineCoupling", "Partial", "Scaling", "Squeeze", "alternating_mask", "channel_mask",
    "checkerboard_mask", "half_mask", "squeeze", "unsqueeze", "ActNorm", "BatchNorm",
    "MADE", "MaskedLinear", "MaskedAffineAutoregressive", "MAF", "IAF", "reparametrized",
    "Planar", "Radial", "mlp", "NICE", "RealNVP", "MultiscaleRealNVP",
    "fit", "evaluate_nll", "History", "fit_reverse_kl", "evaluate_elbo", "ReverseKLHistory", "ELBOEstimate",
    "VAE", "BernoulliDecoder", "ELBOTerms", "GaussianDecoder", "GaussianEncoder", "MixturePrior", "VampPrior",
    "gaussian_kl", "gaussian_log_prob", "posterior_iaf", "AggregatedPosterior", "Surgery", "elbo_surgery",
    "local_posterior_elbo",
    "BoltzmannMachine", "RBM", "device", "seed", "randomize_parameters",
]


def __getattr__(name):
    # flowbook.plot pulls in matplotlib and seaborn, so it is imported on first use only.
    if name == "plot":
        import importlib
        return importlib.import_module(".plot", __name__)
    raise AttributeError(f"module 'flowbook' has no attribute {name!r}")
