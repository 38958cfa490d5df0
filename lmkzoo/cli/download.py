"""``lmkzoo download``: pre-fetch pretrained weights into the cache, or into a folder for an offline machine."""

from __future__ import annotations

import sys

EXAMPLES = {
    "download": "lmkzoo download --all --dest /media/usb/lmkzoo   # then LMKZOO_HOME=/media/usb/lmkzoo elsewhere",
}


def _cmd_download(args) -> int:
    from lmkzoo import hub
    from lmkzoo.errors import InvalidArgumentError

    if not args.names and not args.all:
        raise InvalidArgumentError("name at least one model (lmkzoo list --pretrained) or use --all")
    got = hub.download(args.names, all_models=args.all, dest=args.dest, progress=not args.quiet)
    for name, path in got.items():
        print(f"{name}\t{path}")
    for name in args.names:
        from lmkzoo.registry import get_spec

        spec = get_spec(name)
        if spec.name not in got:
            print(f"{spec.name}\tships inside lmkzoo ({spec.weights.file}); nothing to download")
    if args.dest is not None and got:
        from pathlib import Path

        dest = Path(args.dest).expanduser().resolve()
        print(f"{len(got)} file(s) in {dest / 'weights'} (SHA256SUMS beside them). On the offline machine use "
              f"LMKZOO_HOME={dest} or LMKZOO_WEIGHTS_MIRROR={dest / 'weights'}", file=sys.stderr)
    return 0


def register(add) -> None:
    """Register ``download`` through ``add(name, help, handler)``."""
    sp = add("download", "pre-fetch pretrained weights into the cache, or into a folder for an offline machine",
             _cmd_download)
    sp.add_argument("names", nargs="*", metavar="NAME", help="arch or arch.tag with published weights")
    sp.add_argument("--all", action="store_true", help="every zoo entry with downloadable weights")
    sp.add_argument("--dest", metavar="DIR", help="write DIR/weights/* + SHA256SUMS instead of the cache; copy DIR "
                    "to the offline machine and set LMKZOO_HOME=DIR (or LMKZOO_WEIGHTS_MIRROR=DIR/weights)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
