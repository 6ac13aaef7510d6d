"""APEX Director's headless engine.  The public API is :mod:`engine.api`.

Importing this package does no work: no device probing, no model loading, no
config reads, and no heavy imports (torch, librosa, av are imported lazily).
"""

__version__ = "0.1.0"
