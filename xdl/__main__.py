"""``python -m xdl``: the ``xdl`` command (`xdl.cli.main`, the console script's entry point), for
an environment whose scripts directory is not on the PATH."""

import sys

from xdl.cli import main

if __name__ == "__main__":  # (imported, as a test imports every module, it runs nothing)
    sys.exit(main())
