"""``python -m tomolearn`` (used by ``torchrun -m tomolearn train CONFIG``)."""

import sys

from .cli import main

sys.exit(main())
