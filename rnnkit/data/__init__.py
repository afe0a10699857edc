"""Readers and corpus builders, one module per format or source."""
