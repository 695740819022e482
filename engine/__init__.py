"""The headless Helmdesk engine. Imports no Qt, nothing from ``app`` or ``widgets``."""

__version__ = "0.1.0"
