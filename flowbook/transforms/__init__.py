"""Bijections, one module per family: each maps z -> x (``forward``) and back (``inverse``) with its log-det."""
from .autoregressive import Autoregressive, MaskedAffineAutoregressive, reparametrized
from .coupling import (AdditiveCoupling, AffineCoupling, Coupling, alternating_mask, channel_mask, checkerboard_mask,
                       half_mask)
from .elementwise import Logit, Scaling, SinhArcsinh, soft_clamp
from .image import ConvAffineCoupling, GlowStep, InvertibleConv1x1
from .linear import Affine, LULinear, Permutation, QRLinear, ReversePermutation
from .multiscale import Partial, Squeeze, squeeze, unsqueeze
from .normalization import ActNorm, BatchNorm
from .ode import ODEFlow, trace_exact, trace_hutchinson
from .residual import Planar, Radial
from .spline import Spline, SplineAutoregressive, SplineCoupling, rational_quadratic_spline, spline_knots
from .sylvester import HouseholderSylvester, Sylvester, TriangularSylvester

__all__ = [
    "ActNorm", "AdditiveCoupling", "Affine", "AffineCoupling", "Autoregressive", "BatchNorm", "ConvAffineCoupling",
    "Coupling", "GlowStep", "HouseholderSylvester", "InvertibleConv1x1", "LULinear", "Logit",
    "MaskedAffineAutoregressive", "ODEFlow", "Partial", "Permutation", "Planar", "QRLinear", "Radial",
    "ReversePermutation", "Scaling", "SinhArcsinh", "Spline", "SplineAutoregressive", "SplineCoupling", "Squeeze",
    "Sylvester", "TriangularSylvester", "alternating_mask", "channel_mask", "checkerboard_mask",
    "half_mask", "rational_quadratic_spline", "reparametrized", "soft_clamp", "spline_knots", "squeeze",
    "trace_exact", "trace_hutchinson", "unsqueeze",
]
