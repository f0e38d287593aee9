"""mxprobe: Reacher-compatible bulk email verification."""

__version__ = "0.1.0"
