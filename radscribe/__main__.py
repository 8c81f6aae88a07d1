"""``python -m radscribe ...`` = ``radscribe ...`` (the one entry point, :mod:`radscribe.cli`)."""

import sys

from radscribe.cli import main

if __name__ == "__main__":
    sys.exit(main())
