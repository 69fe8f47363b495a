"""The package version, also part of every stored trial's key."""

__version__ = "0.1.0"
