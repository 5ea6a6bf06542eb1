"""Latent-variable models: the VAE (with flow posteriors and learnable priors) and ELBO surgery."""
from .surgery import AggregatedPosterior, Surgery, elbo_surgery, local_posterior_elbo
from .vae import (VAE, BernoulliDecoder, ELBOTerms, GaussianDecoder, GaussianEncoder, MixturePrior, VampPrior,
                  gaussian_kl, gaussian_log_prob, mixture_log_prob, mixture_sample, posterior_iaf)

__all__ = ["VAE", "BernoulliDecoder", "ELBOTerms", "GaussianDecoder", "GaussianEncoder", "MixturePrior", "VampPrior",
           "gaussian_kl", "gaussian_log_prob", "mixture_log_prob", "mixture_sample", "posterior_iaf",
           "AggregatedPosterior", "Surgery", "elbo_surgery", "local_posterior_elbo"]
