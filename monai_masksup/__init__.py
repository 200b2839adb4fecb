"""MONAI plugin for masked supervised learning and related semi-/self-supervised methods."""

__version__ = "0.1.0"
