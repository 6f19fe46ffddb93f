"""Quality benchmark: the speech recognizer on the Free Spoken Digit Dataset.

    .venv/bin/python benchmarks/speech_fsdd.py [--data ../shared/data/fsdd] [--set key=value ...]
    .venv/bin/python benchmarks/speech_fsdd.py --holdout-speaker theo   # leave one speaker out

Trains the `small` preset from scratch on connected-digit utterances built
from the training recordings (index 10-49, each also played 10% slower and
10% faster; 1 to 4 words joined by pauses), then scores through the
exported WAV signature, decoding with a 16-path beam restricted to the digit
names (RECIPE below):
single-digit accuracy on the validation recordings (index 5-9, or every
recording of the held-out speaker), and WER/CER on connected-digit strings
built from those same validation recordings. Writes
benchmarks/results/speech_fsdd[_<speaker>].json. Needs the data set on disk;
it is not part of the test suite.
"""

import argparse
import dataclasses
import json
import os
import time

from applications.common.config import apply_overrides, from_preset
from applications.speech_recognition import data, evaluate, serving
from applications.speech_recognition.config import PRESETS, SpeechRecognitionConfig
from applications.speech_recognition.model import build_recognizer
from applications.speech_recognition.train import train

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "..", "..", "shared", "data", "fsdd")


# 97.3% single-digit accuracy and 0.83% connected-digit WER on recordings 5-9 after 50 epochs
# (about 47 s each on a quiet 2-core machine). Without speed perturbation, 6,000 utterances and
# lexicon decoding (40 epochs of 4,000): 96.0% and 2.07%.
RECIPE = ["connected_digits=4", "speed_perturbation=[0.9,1.1]", "connected_examples=6000",
          "epochs=50", "beam_size=16", "lexicon_decoding=true"]


def _from_checkpoint(data_dir, workdir, overrides):
    """The best checkpoint of an earlier run, served, and its connected-digit val scores.
    `overrides` may change decoding (beam_size, lexicon_decoding), not the model."""
    with open(os.path.join(workdir, "config.json")) as handle:
        config = apply_overrides(SpeechRecognitionConfig(**json.load(handle)), overrides)
    splits = data.load_speech(data_dir, config)
    vocabulary = data.build_vocabulary(splits["train"][1], config.output_units)
    model = build_recognizer(config, len(vocabulary))
    model.load_weights(os.path.join(workdir, "checkpoints", "best.weights.h5"))
    lexicon = (data.build_vocabulary(splits["train"][1], "words")
               if config.lexicon_decoding else None)
    server = serving.SpeechServer(model, vocabulary, config, lexicon=lexicon)
    waves, references = splits["val"]
    scores = evaluate.score(
        evaluate.transcribe_batches(server.serve, waves, config.sample_rate), references)
    return config, {"server": server, "scores": scores, "history": None}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--holdout-speaker", help="leave this speaker out (validation = all "
                        "of that speaker's recordings)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--workdir", default="runs/benchmark_fsdd")
    parser.add_argument("--tag", help="suffix of the results file, to keep a variant's record "
                        "beside the default's (e.g. --tag conformer)")
    parser.add_argument("--from-checkpoint", action="store_true",
                        help="skip training: score the best checkpoint of an earlier run "
                        "in --workdir (its config.json, with --set decoding overrides)")
    args = parser.parse_args()
    overrides = [*RECIPE, *args.set]
    if args.holdout_speaker:
        overrides.append(f"holdout_speaker={args.holdout_speaker}")
    config = apply_overrides(from_preset(SpeechRecognitionConfig, PRESETS, "small"), overrides)
    workdir = args.workdir + (f"_{args.holdout_speaker}" if args.holdout_speaker else "")

    started = time.time()
    if args.from_checkpoint:
        config, result = _from_checkpoint(args.data, workdir, args.set)
    else:
        result = train(config, data_dir=args.data, workdir=workdir,
                       export_dir=os.path.join(workdir, "export"), verbose=2)
    trained = time.time() - started

    words = data.load_speech(args.data, dataclasses.replace(config, connected_digits=0))
    waves, references = words["val"]
    single = evaluate.score(
        evaluate.transcribe_batches(result["server"].serve, waves, config.sample_rate),
        references)
    connected = result["scores"]  # train() scored the connected validation strings
    record = {
        "benchmark": "speech_fsdd" + (f"_leave_out_{args.holdout_speaker}"
                                      if args.holdout_speaker else "_val_5_9"),
        "command": "python benchmarks/speech_fsdd.py" + "".join(
            f" --set {item}" for item in args.set) + (
            f" --holdout-speaker {args.holdout_speaker}" if args.holdout_speaker else "") + (
            f" --from-checkpoint --workdir {args.workdir}" if args.from_checkpoint else ""),
        "config": dataclasses.asdict(config),
        "single_digit_accuracy_val": round(single["exact"], 2),
        "single_digit_clips": len(references),
        "connected_digits_wer_val": round(connected["wer"], 2),
        "connected_digits_cer_val": round(connected["cer"], 2),
        "connected_digits_exact_val": round(connected["exact"], 2),
        "train_seconds": None if args.from_checkpoint else round(trained, 1),
        "epochs_run": len(result["history"]["loss"]) if result["history"] else None,
        "weights": "best checkpoint (lowest val_loss)" if args.from_checkpoint
        else f"export_weights={config.export_weights}",
    }
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    name = "speech_fsdd" + (f"_{args.holdout_speaker}" if args.holdout_speaker else "") + (
        f"_{args.tag}" if args.tag else "")
    with open(os.path.join(HERE, "results", name + ".json"), "w") as handle:
        json.dump(record, handle, indent=2)
    print(json.dumps({k: v for k, v in record.items() if k != "config"}, indent=2))


if __name__ == "__main__":
    main()
