"""``python -m lmkzoo.cli``: the ``lmkzoo`` command."""

import sys

from lmkzoo.cli import main

sys.exit(main())
