"""Helpers every stage may use: atomic writes and the repository's paths."""
