"""Widgets of the desktop app; each exposes signals/slots and a small Python API."""
