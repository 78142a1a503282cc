"""phasegate: gated, verified, self-rolling-back migrations, one Pulumi stack per phase."""

__all__ = ["__version__"]

__version__ = "0.1.0"
