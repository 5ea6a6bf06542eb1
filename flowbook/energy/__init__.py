"""Energy-based models on binary vectors: the likelihood a flow has and these lack."""
from .boltzmann import MAX_ENUM, BoltzmannMachine, all_states, bernoulli
from .rbm import RBM, RBMHistory

__all__ = ["BoltzmannMachine", "RBM", "RBMHistory", "MAX_ENUM", "all_states", "bernoulli"]
