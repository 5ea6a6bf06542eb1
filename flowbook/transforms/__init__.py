"""Bijections, one module per family: each maps z -> x (``forward``) and back (``inverse``) with its log-det."""
from .autoregressive import MaskedAffineAutoregressive, reparametrized
from .coupling import (AdditiveCoupling, AffineCoupling, Coupling, alternating_mask, channel_mask, checkerboard_mask,
                       half_mask)
from .elementwise import Logit, Scaling, SinhArcsinh, soft_clamp
from .linear import Affine, LULinear, Permutation, QRLinear, ReversePermutation
from .multiscale import Partial, Squeeze, squeeze, unsqueeze
from .normalization import ActNorm, BatchNorm
from .residual import Planar, Radial

__all__ = ["Affine", "LULinear", "QRLinear", "Permutation", "ReversePermutation",
           "Scaling", "Logit", "SinhArcsinh", "soft_clamp",
           "Coupling", "AdditiveCoupling", "AffineCoupling", "half_mask", "alternating_mask", "checkerboard_mask",
           "channel_mask", "MaskedAffineAutoregressive", "reparametrized", "Planar", "Radial",
           "ActNorm", "BatchNorm", "squeeze", "unsqueeze", "Squeeze", "Partial"]
