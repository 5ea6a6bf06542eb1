"""Data that needs no network: 2-D densities with exact log-densities, and the bundled 8x8 digits."""
from .densities import (DENSITIES, Checkerboard, Circles, Density2D, GaussianMixture, Grid, Moons, NoisyCurves, Ring,
                        Spirals, StudentT, Fork)
from .digits import Digits, binarize, bits_per_dim, dequantize, load_digits

__all__ = ["Density2D", "GaussianMixture", "Ring", "Grid", "NoisyCurves", "Moons", "Circles", "Spirals",
           "Checkerboard", "StudentT", "Fork", "DENSITIES", "Digits", "load_digits", "binarize", "dequantize", "bits_per_dim"]
