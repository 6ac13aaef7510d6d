"""Qt item and view models over engine.api data (``models/`` is the weights folder)."""
