"""Allow ``python -m fslib``."""

import sys

from .cli import main

sys.exit(main())
