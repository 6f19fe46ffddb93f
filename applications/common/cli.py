"""The `tfformer` command line: thin parsing, then a call into an application."""

import argparse
import os
import sys


def _demo(args):
    from applications.demo.train import DemoConfig, train

    config = DemoConfig(epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, seed=args.seed)
    result = train(config)
    first, last = result["losses"][0], result["losses"][-1]
    print(f"loss fell from {first:.3f} to {last:.3f} over {len(result['losses'])} epochs; "
          f"validation token accuracy {result['val_accuracy']:.3f}")
    return 0 if last < first else 1


def build_parser():
    parser = argparse.ArgumentParser(prog="tfformer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="train a small encoder-decoder on generated data and show the loss falling")
    demo.add_argument("--epochs", type=int, default=4)
    demo.add_argument("--steps-per-epoch", type=int, default=60)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(handler=_demo)
    return parser


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
