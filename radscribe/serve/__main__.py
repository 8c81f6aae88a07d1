"""``python -m radscribe.serve [--host H] [--port P] [--work-dir DIR]`` = ``radscribe serve ...``."""

import sys

from radscribe.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
