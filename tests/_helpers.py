"""Helpers shared by the test files (imported as ``from _helpers import randomize``)."""
import torch


def randomize(module, scale=0.5, seed=0):
    """Give every parameter (zero-initialized last layers included) a random value, so that checks
    do not run at a layer's identity initialization."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module
