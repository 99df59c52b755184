"""A repository-scale coding agent built for GLM-5.2."""

__version__ = "0.1.0"
