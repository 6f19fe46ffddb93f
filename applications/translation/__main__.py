"""`python -m applications.translation ARGS` is `tfformer train translation ARGS`."""

import sys

from applications.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "translation", *sys.argv[1:]]))
