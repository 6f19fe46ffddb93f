"""`python -m applications.speech_recognition ARGS` is `tfformer train speech_recognition ARGS`."""

import sys

from applications.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "speech_recognition", *sys.argv[1:]]))
