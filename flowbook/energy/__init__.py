"""Energy-based models on binary vectors: the likelihood a flow has and these lack."""
from .boltzmann import MAX_ENUM, BoltzmannMachine, all_states, bernoulli, check_binary
from .rbm import RBM

__all__ = ["BoltzmannMachine", "RBM", "MAX_ENUM", "all_states", "bernoulli", "check_binary"]
