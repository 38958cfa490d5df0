"""Argument types shared by the subcommands: numbers checked by argparse (so a bad value is a one-line usage
error, exit status 2), comma lists, and ``--weights``."""

from __future__ import annotations

import argparse


def _number(kind, accept, name: str):
    """An argparse type: a finite ``kind`` number for which ``accept(value)`` holds; ``name`` says which."""

    def parse(text: str):
        import math

        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {name}; got {text!r}") from None
        if not (math.isfinite(value) and accept(value)):
            raise argparse.ArgumentTypeError(f"expected {name}; got {text!r}")
        return value

    parse.__name__ = name  # argparse names the type in its messages
    return parse


_count = _number(int, lambda v: v >= 1, "a positive integer")
_count0 = _number(int, lambda v: v >= 0, "a non-negative integer")
_positive = _number(float, lambda v: v > 0, "a positive number")


def _weights_arg(text: str):
    return None if text.lower() == "none" else text


def _csv(kind):
    def parse(text: str):
        items = [t.strip() for t in text.split(",") if t.strip()]
        try:
            return [kind(t) for t in items]
        except (ValueError, argparse.ArgumentTypeError):
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {kind.__name__}; got {text!r}") from None

    return parse
