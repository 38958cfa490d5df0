"""The ``lmkzoo`` command line: :func:`main` and the parser; each command group lives in a module of its own
(``predict``, ``zoo``: list and info, ``convert``, ``download``, ``publish``, ``train``, ``evaluate``, ``bench``,
``export``, ``data``), which registers its subparser next to its handler (``register(add)``).

Every expected failure prints one line to stderr and exits with status 2, never a traceback, through one
mechanism: the library raises a typed :class:`~lmkzoo.errors.LmkzooError` for anything a user can get wrong (names,
values, files), :func:`main` turns it (and an ``OSError`` from the file system: permissions, a full disk) into that
line, and argument syntax errors (including numbers out of range, checked by the argument types of
:mod:`lmkzoo.cli._args`) go the same way through :class:`_Parser`. Heavy imports happen inside the commands, so
``lmkzoo list`` and ``lmkzoo --help`` do not import TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import sys

from lmkzoo.cli import bench, convert, data, download, evaluate, export, predict, publish, train, zoo
from lmkzoo.errors import LmkzooError
from lmkzoo.tf_env import apply_tf_process_settings

#: command groups, in the order ``lmkzoo --help`` lists their subcommands
COMMANDS = (predict, zoo, convert, download, publish, train, evaluate, bench, export, data)
_EXAMPLES = {name: example for group in COMMANDS for name, example in group.EXAMPLES.items()}
#: each subcommand's example line, in the order ``lmkzoo --help`` prints them
EXAMPLES = {name: _EXAMPLES[name] for name in ("predict", "list", "info", "convert", "download", "publish", "data",
                                               "train", "evaluate", "bench", "export")}


class _Parser(argparse.ArgumentParser):
    """argparse with lmkzoo's error line: ``lmkzoo CMD: error: MESSAGE (lmkzoo CMD --help)``, exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _one_line(error: BaseException) -> str:
    """The error's message on one line (messages from other libraries may span several)."""
    text = " ".join(str(error).split())
    if isinstance(error, OSError) and not isinstance(error, LmkzooError):
        where = " -> ".join(str(f) for f in (error.filename, error.filename2) if f)
        text = f"{error.strerror or text}: {where}" if where and error.strerror else text
    return text or type(error).__name__


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="lmkzoo",
        description="Face-landmark model zoo for Keras 3 / TensorFlow.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n" + "\n".join(f"  {v}" for v in EXAMPLES.values()),
    )
    from lmkzoo import __version__

    p.add_argument("--version", action="version", version=f"lmkzoo {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, help_, func):
        sp = sub.add_parser(
            name, help=help_, description=help_, epilog=f"example:\n  {EXAMPLES[name]}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sp.set_defaults(func=func)
        sp.add_argument("-v", "--verbose", action="store_true",
                        help="let TensorFlow, absl and LiteRT print their log lines on stderr")
        return sp

    for group in COMMANDS:
        group.register(add)
    return p


def _quiet_native_logs() -> None:
    """Keep TensorFlow, absl, LiteRT and XNNPACK log lines off stderr (``--verbose`` keeps them): native libraries
    write to file descriptor 2, which goes to /dev/null, while Python's ``sys.stderr`` (lmkzoo's messages, warnings,
    progress bars, tracebacks) keeps writing to the real stderr through a duplicate of it."""
    import logging

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in ("absl", "tensorflow"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if sys.stderr is not sys.__stderr__ or getattr(_quiet_native_logs, "done", False):
        return  # stderr is already redirected (pytest's capture, an embedding program): leave the descriptors alone
    try:
        sys.stderr.flush()
        real = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError):
        return
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = sys.__stderr__ = os.fdopen(real, "w", buffering=1, encoding=sys.stderr.encoding,
                                            errors=sys.stderr.errors)
    _quiet_native_logs.done = True


def main(argv=None) -> int:
    apply_tf_process_settings()  # before any command imports TensorFlow (lmkzoo.tf_env: CPU training twice as fast)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "verbose", False):
        _quiet_native_logs()
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # the reader went away (``lmkzoo list | head``): stop quietly, as Unix tools do; point stdout at devnull so
        # the interpreter's final flush does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (LmkzooError, OSError) as e:  # what a user can get wrong, and what the file system refuses
        print(f"lmkzoo {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
