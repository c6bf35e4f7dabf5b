"""Entry point of the bundled app: the same as the ``imagery-gui`` command."""

import sys

from imagery_gui.cli import main

if __name__ == "__main__":
    sys.exit(main())
