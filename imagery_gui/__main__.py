"""``python -m imagery_gui`` works the same as ``imagery-gui``."""

import sys

from .cli import main

sys.exit(main())
