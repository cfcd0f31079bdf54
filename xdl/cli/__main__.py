"""``python -m xdl.cli``: the ``xdl`` command (`xdl.cli.main`), as ``python -m xdl`` runs it."""

import sys

from xdl.cli import main

if __name__ == "__main__":  # (imported, as a test imports every module, it runs nothing)
    sys.exit(main())
