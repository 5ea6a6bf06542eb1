"""Helpers shared by the test files (imported as ``from _helpers import randomize``)."""
from flowbook.runtime import randomize_parameters as randomize  # noqa: F401
