"""Order books: per-venue L2 books (and, later, the consolidated book)."""

from engine.book.l2 import L2Book

__all__ = ["L2Book"]
