"""Order books: one L2 book per venue and instrument and the consolidated book (``BookSet``)."""

from engine.book.books import BookSet, apply_batch

__all__ = ["BookSet", "apply_batch"]
