"""``python -m lmkzoo``: the ``lmkzoo`` command (:func:`lmkzoo.cli.main`)."""

import sys

from lmkzoo.cli import main

sys.exit(main())
