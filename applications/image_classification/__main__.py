"""`python -m applications.image_classification ARGS` is `tfformer train image_classification ARGS`."""

import sys

from applications.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "image_classification", *sys.argv[1:]]))
