"""flowbook: the normalizing-flow package behind the flowbook lecture companion.

Convention (as in ``torch.distributions``): a bijection's ``forward`` is the generative map
z -> x returning ``(x, log|det dx/dz|)``; ``inverse`` returns ``(z, log|det dz/dx|)``;
``Flow.log_prob`` uses ``inverse``.

Layout: ``core`` (Bijection, Compose, Flow), ``distributions`` (base densities), ``transforms``
(the bijections, one module per family), ``flows`` (ready-made flows), ``nn`` (conditioner
networks, MADE), ``jacobian`` (the checker), ``train`` and ``reverse_kl`` (fitting), ``data``,
``targets``, ``plot``, ``latent`` (VAEs), ``energy`` (Boltzmann machines).

Example:
    >>> import torch, flowbook
    >>> flow = flowbook.RealNVP(2)
    >>> flow.log_prob(torch.randn(4, 2)).shape
    torch.Size([4])
"""
from . import data, energy, latent, nn, targets, timing, transforms
# core: bijections, composition, flows, base distributions, the checker
from .core import Bijection, Compose, Flow, Inverse
from .distributions import BoxUniform, StandardNormal
from .jacobian import BijectionReport, check_bijection, jacobian, logabsdet
# bijections
from .transforms import (ActNorm, AdditiveCoupling, Affine, AffineCoupling, BatchNorm, Coupling, Logit, LULinear,
                         MaskedAffineAutoregressive, Partial, Permutation, Planar, QRLinear, Radial, ReversePermutation,
                         Scaling, SinhArcsinh, Squeeze, alternating_mask, channel_mask, checkerboard_mask, half_mask,
                         reparametrized, soft_clamp, squeeze, unsqueeze)
# networks
from .nn import MADE, MaskedLinear, mlp
# ready-made flows
from .flows import IAF, MAF, NICE, MultiscaleRealNVP, RealNVP
# training
from .train import History, evaluate_nll, fit
from .reverse_kl import ELBOEstimate, ReverseKLHistory, evaluate_elbo, fit_reverse_kl
# beyond flows: VAEs and energy-based models
from .latent import (VAE, AggregatedPosterior, BernoulliDecoder, ELBOTerms, GaussianDecoder, GaussianEncoder,
                     MixturePrior, Surgery, VampPrior, elbo_surgery, gaussian_kl, gaussian_log_prob,
                     local_posterior_elbo, posterior_iaf)
from .energy import RBM, BoltzmannMachine
from .utils import device, randomize_parameters, seed, threads
from .teaching import check, source

__version__ = "0.2.0"

__all__ = [
    "data", "energy", "latent", "nn", "targets", "timing", "transforms", "plot", "diagrams",
    "Bijection", "Compose", "Flow", "Inverse", "StandardNormal", "BoxUniform",
    "jacobian", "logabsdet", "check_bijection", "BijectionReport",
    "Affine", "LULinear", "QRLinear", "Permutation", "ReversePermutation", "Scaling", "Logit", "SinhArcsinh",
    "soft_clamp", "Coupling", "AdditiveCoupling", "AffineCoupling", "alternating_mask", "channel_mask",
    "checkerboard_mask", "half_mask", "squeeze", "unsqueeze", "Squeeze", "Partial", "ActNorm", "BatchNorm",
    "MaskedAffineAutoregressive", "reparametrized", "Planar", "Radial",
    "MADE", "MaskedLinear", "mlp", "NICE", "RealNVP", "MultiscaleRealNVP", "MAF", "IAF",
    "fit", "evaluate_nll", "History", "fit_reverse_kl", "evaluate_elbo", "ReverseKLHistory", "ELBOEstimate",
    "VAE", "BernoulliDecoder", "ELBOTerms", "GaussianDecoder", "GaussianEncoder", "MixturePrior", "VampPrior",
    "gaussian_kl", "gaussian_log_prob", "posterior_iaf", "AggregatedPosterior", "Surgery", "elbo_surgery",
    "local_posterior_elbo", "BoltzmannMachine", "RBM", "device", "seed", "threads", "randomize_parameters",
    "check", "source", "__version__",
]


def __getattr__(name):
    # flowbook.plot and flowbook.diagrams pull in matplotlib, so they are imported on first use only.
    if name in ("plot", "diagrams"):
        import importlib
        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'flowbook' has no attribute {name!r}")

# continuous-time flows and flow matching (the "Beyond the lectures" chapters 11 and 12)
from .transforms.ode import ODEFlow, rk4, trace_exact, trace_hutchinson  # noqa: E402
from .nn import VectorField  # noqa: E402
from .flow_matching import (cfm_loss, energy_distance, euler_sample, fit_flow_matching, ot_pairing,  # noqa: E402
                            reflow_pairs, straightness)

__all__ += ["ODEFlow", "rk4", "trace_exact", "trace_hutchinson", "VectorField", "cfm_loss", "euler_sample",
            "fit_flow_matching", "ot_pairing", "reflow_pairs", "straightness", "energy_distance"]

# neural spline flows and the mixture base (issue 18)
from .transforms.spline import (Spline, SplineAutoregressive, SplineCoupling, rational_quadratic_spline,  # noqa: E402
                                spline_knots)
from .distributions import MixtureBase  # noqa: E402
from .flows import NSF, NSFCoupling  # noqa: E402

__all__ += ["rational_quadratic_spline", "spline_knots", "Spline", "SplineCoupling", "SplineAutoregressive",
            "MixtureBase", "NSF", "NSFCoupling"]

# Sylvester flows, Glow's image layers, dequantization for any number of levels (issue 17)
from .transforms.sylvester import HouseholderSylvester, Sylvester, TriangularSylvester  # noqa: E402
from .transforms.image import (ActNormChannels, ConvAffineCoupling, ConvConditioner, GlowStep,  # noqa: E402
                               InvertibleConv1x1, from_pixels, to_pixels)
from .flows import Glow, sample_at_temperature  # noqa: E402
from .dequantization import DequantizedFlow, VariationalDequantizer  # noqa: E402
from . import dequantization  # noqa: E402

__all__ += ["Sylvester", "HouseholderSylvester", "TriangularSylvester", "InvertibleConv1x1", "ActNormChannels",
            "ConvConditioner", "ConvAffineCoupling", "GlowStep", "to_pixels", "from_pixels", "Glow",
            "sample_at_temperature", "DequantizedFlow", "VariationalDequantizer", "dequantization"]
