"""The engine version: one place, read by the package, the manifest and the model metadata."""

__version__ = "0.1.0"
