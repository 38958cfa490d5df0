"""Converters from official checkpoints into lmkzoo's weights format (``lmkzoo convert ...``)."""
