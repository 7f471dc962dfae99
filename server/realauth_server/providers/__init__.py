"""Adapters, one module per vendor; ``registry`` maps kinds to classes."""
