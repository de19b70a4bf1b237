"""``python -m tomolearn.cli``: the ``tomolearn`` command line."""

import sys

from . import main

sys.exit(main())
