"""Data that needs no network: 2-D densities with exact log-densities, and the bundled 8x8 digits."""
from .densities import (DENSITIES, Checkerboard, Circles, Density2D, GaussianMixture, Grid, Moons, NoisyCurves, Ring,
                        Spirals, StudentT)
from .digits import Digits, binarize, load_digits

__all__ = ["Density2D", "GaussianMixture", "Ring", "Grid", "NoisyCurves", "Moons", "Circles", "Spirals",
           "Checkerboard", "StudentT", "DENSITIES", "Digits", "load_digits", "binarize"]

# dequantization and bits/dim for any number of levels (issue 17)
from .digits import bits_per_dim, dequantize  # noqa: E402

__all__ += ["dequantize", "bits_per_dim"]
