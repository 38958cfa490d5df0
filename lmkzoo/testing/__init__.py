"""Helpers shared by lmkzoo's tests and by users' tests of their own models (tiny specs, tiny data)."""
