"""Latent-variable models: the VAE (with flow posteriors and learnable priors) and ELBO surgery.

``networks``: the encoder, the decoders, the Gaussian KL and an IAF posterior flow; ``vae``: the
VAE, its ELBO terms and the VampPrior; ``surgery``: ELBO surgery and per-image posteriors.
"""
from .networks import BernoulliDecoder, GaussianDecoder, GaussianEncoder, gaussian_kl, posterior_iaf
from .surgery import AggregatedPosterior, Surgery, elbo_surgery, local_posterior_elbo
from .vae import VAE, ELBOTerms, VampPrior

__all__ = ["AggregatedPosterior", "BernoulliDecoder", "ELBOTerms", "GaussianDecoder", "GaussianEncoder", "Surgery",
           "VAE", "VampPrior", "elbo_surgery", "gaussian_kl", "local_posterior_elbo", "posterior_iaf"]
