"""Quality benchmark: the `small` preset on Multi30k En->De, scored on val.

    .venv/bin/python benchmarks/translation_multi30k.py [--data ../shared/data/multi30k]

Trains from scratch (tokenizer included), scores val with sacreBLEU (cased,
detokenized) and chrF through the exported signature, and writes
benchmarks/results/translation_multi30k.json. Needs the data set on disk; it
is not part of the test suite.
"""

import argparse
import dataclasses
import json
import os
import time

from applications.common.config import apply_overrides, from_preset
from applications.translation import data, evaluate, restore
from applications.translation.config import PRESETS, TranslationConfig
from applications.translation.train import train

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "..", "..", "shared", "data", "multi30k")


def _from_checkpoint(data_dir, workdir):
    """The best checkpoint of an earlier run, served with its tokenizer, scored on val."""
    trained = restore.load(workdir, "best")
    config, server = trained.config, trained.server
    pairs = data.load_corpus(data_dir, config)["val"]
    hypotheses = evaluate.translate_batches(server.serve, [s for s, _ in pairs])
    return config, {"scores": evaluate.score(hypotheses, [t for _, t in pairs]),
                    "history": None}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--workdir", default="runs/benchmark_multi30k")
    parser.add_argument("--from-checkpoint", action="store_true",
                        help="skip training: score the best checkpoint of an earlier run in "
                        "--workdir (its config.json and tokenizer are used)")
    parser.add_argument("--tag", help="suffix of the results file, to keep a variant's record "
                        "beside the default's (e.g. --tag streamed)")
    args = parser.parse_args()
    config = apply_overrides(from_preset(TranslationConfig, PRESETS, "small"), args.set)
    started = time.time()
    if args.from_checkpoint:
        config, result = _from_checkpoint(args.data, args.workdir)
    else:
        result = train(config, data_dir=args.data, workdir=args.workdir,
                       export_dir=os.path.join(args.workdir, "export"), verbose=2)
    elapsed = time.time() - started
    record = {
        "benchmark": "translation_multi30k_val",
        "command": "python benchmarks/translation_multi30k.py " + " ".join(
            f"--set {item}" for item in args.set),
        "config": dataclasses.asdict(config),  # fields only (not the class variables)
        "sacrebleu_val": round(result["scores"]["bleu"], 2),
        "chrf_val": round(result["scores"]["chrf"], 2),
        "train_and_eval_seconds": round(elapsed, 1),
        "epochs_run": len(result["history"]["loss"]) if result["history"] else None,
        "weights": ("best checkpoint (lowest val_loss)" if args.from_checkpoint
                    else f"export_weights={config.export_weights}"),
    }
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    name = "translation_multi30k" + (f"_{args.tag}" if args.tag else "")
    with open(os.path.join(HERE, "results", f"{name}.json"), "w") as handle:
        json.dump(record, handle, indent=2)
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
