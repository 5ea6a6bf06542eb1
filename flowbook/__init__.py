"""flowbook: the normalizing-flow package behind the flowbook lecture companion.

Convention (as in ``torch.distributions``): a bijection's ``forward`` is the generative map
z -> x returning ``(x, log|det dx/dz|)``; ``inverse`` returns ``(z, log|det dz/dx|)``;
``Flow.log_prob`` uses ``inverse``.

Layout, by layer (each line below is one group of the imports that follow):

* core: ``core`` (Bijection, Inverse, Compose), ``flow`` (Flow), ``distributions`` (base densities),
  ``jacobian`` and ``triangular`` (the checkers);
* transforms: ``transforms`` (the bijections, one module per family), ``nn`` (conditioner networks),
  ``integrators`` (fixed-step ODE solvers);
* flows: ``flows`` (ready-made flows), ``dequantization`` (flows as models of discrete data);
* training: ``engine`` (the loop, ``History``), ``batches`` (data as users hold it), ``train``
  (maximum likelihood), ``reverse_kl``, ``flow_matching``, ``diffusion`` (Gaussian paths, exact scores);
* data: ``data`` (2-D densities, digits), ``targets`` (unnormalized 2-D targets), ``plot``;
* latent and energy models: ``latent`` (VAEs), ``energy`` (Boltzmann machines);
* runtime and checks: ``runtime`` (device, seed, threads), ``validation`` (entry-point checks);
* book tools: ``teaching`` (``check``, ``source``, timing, diagrams, the cost benchmark).

Example:
    >>> import torch, flowbook
    >>> flow = flowbook.RealNVP(2)
    >>> flow.log_prob(torch.randn(4, 2)).shape
    torch.Size([4])
"""
from . import data, dequantization, diffusion, energy, latent, nn, runtime, targets, teaching, transforms, validation
# core
from .core import Bijection, Compose, Inverse
from .distributions import BoxUniform, MixtureBase, StandardNormal, gaussian_log_prob
from .flow import Flow
from .jacobian import BijectionReport, check_bijection, jacobian, logabsdet
from .triangular import AutoregressiveReport, check_autoregressive
# transforms
from .transforms import (ActNorm, AdditiveCoupling, Affine, AffineCoupling, Autoregressive, BatchNorm,
                         ConvAffineCoupling, Coupling, GlowStep, HouseholderSylvester,
                         InvertibleConv1x1, Logit, LULinear, MaskedAffineAutoregressive, ODEFlow, Partial, Permutation,
                         Planar, QRLinear, Radial, ReversePermutation, Scaling, SinhArcsinh, Spline,
                         SplineAutoregressive, SplineCoupling, Squeeze, Sylvester, TriangularSylvester,
                         alternating_mask, channel_mask, checkerboard_mask, half_mask,
                         rational_quadratic_spline, reparametrized, soft_clamp, spline_knots, squeeze,
                         trace_exact, trace_hutchinson, unsqueeze)
from .integrators import euler, rk4
from .nn import MADE, MaskedLinear, VectorField, mlp
# flows
from .dequantization import DequantizedFlow, VariationalDequantizer
from .flows import IAF, MAF, NICE, NSF, Glow, MultiscaleRealNVP, NSFCoupling, RealNVP
# training
from .diffusion import MixturePathField
from .flow_matching import (cfm_loss, energy_distance, fit_flow_matching, ot_pairing, reflow_pairs,
                            straightness)
from .reverse_kl import ELBOEstimate, ReverseKLHistory, evaluate_elbo, fit_reverse_kl
from .engine import History, optimize
from .train import evaluate_nll, fit
# latent and energy models
from .energy import RBM, BoltzmannMachine, RBMHistory
from .latent import (VAE, AggregatedPosterior, BernoulliDecoder, ELBOTerms, GaussianDecoder, GaussianEncoder,
                     Surgery, VampPrior, elbo_surgery, gaussian_kl, local_posterior_elbo, posterior_iaf)
# runtime
from .runtime import device, randomize_parameters, seed, threads
# book tools
from .teaching import check, glue, source

__version__ = "0.3.0"

__all__ = [
    # modules
    "data", "dequantization", "diffusion", "energy", "latent", "nn", "plot", "runtime", "targets", "teaching", "transforms",
    "validation",
    # core
    "AutoregressiveReport", "Bijection", "BijectionReport", "BoxUniform", "Compose", "Flow", "Inverse", "MixtureBase", "StandardNormal",
    "check_autoregressive", "check_bijection", "gaussian_log_prob", "jacobian", "logabsdet",
    # transforms
    "ActNorm", "AdditiveCoupling", "Affine", "AffineCoupling", "Autoregressive", "BatchNorm", "ConvAffineCoupling",
    "Coupling", "GlowStep", "HouseholderSylvester", "InvertibleConv1x1", "LULinear", "Logit",
    "MaskedAffineAutoregressive", "ODEFlow", "Partial", "Permutation", "Planar", "QRLinear", "Radial",
    "ReversePermutation", "Scaling", "SinhArcsinh", "Spline", "SplineAutoregressive", "SplineCoupling", "Squeeze",
    "Sylvester", "TriangularSylvester", "alternating_mask", "channel_mask", "checkerboard_mask",
    "half_mask", "rational_quadratic_spline", "reparametrized", "soft_clamp", "spline_knots", "squeeze",
    "trace_exact", "trace_hutchinson", "unsqueeze",
    "MADE", "MaskedLinear", "VectorField", "mlp",
    "euler", "rk4",
    # flows
    "DequantizedFlow", "Glow", "IAF", "MAF", "MultiscaleRealNVP", "NICE", "NSF", "NSFCoupling", "RealNVP",
    "VariationalDequantizer",
    # training
    "ELBOEstimate", "History", "MixturePathField", "ReverseKLHistory", "cfm_loss", "energy_distance", "evaluate_elbo",
    "evaluate_nll", "fit", "fit_flow_matching", "fit_reverse_kl", "optimize", "ot_pairing", "reflow_pairs",
    "straightness",
    # latent and energy models
    "AggregatedPosterior", "BernoulliDecoder", "BoltzmannMachine", "ELBOTerms", "GaussianDecoder", "GaussianEncoder",
    "RBM", "RBMHistory", "Surgery", "VAE", "VampPrior", "elbo_surgery", "gaussian_kl", "local_posterior_elbo", "posterior_iaf",
    # runtime
    "device", "randomize_parameters", "seed", "threads",
    # book tools
    "check", "glue", "source",
    "__version__",
]


def __getattr__(name):
    # flowbook.plot pulls in matplotlib, so it is imported on first use only.
    if name == "plot":
        import importlib
        return importlib.import_module(".plot", __name__)
    raise AttributeError(f"module 'flowbook' has no attribute {name!r}")
