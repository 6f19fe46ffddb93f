"""`python -m applications.translation ARGS` is `tfformer train translation ARGS`."""

import sys

from applications.common.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "translation", *sys.argv[1:]]))
