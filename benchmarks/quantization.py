"""Post-training int8 (and int4) quantization of each application: size, quality, serving speed.

    .venv/bin/python benchmarks/quantization.py [--applications translation,...] [--modes int8]

For each application, its `tiny` preset is trained on the built-in data (once: a run already
in --root is reused). The run's weights are then exported float and quantized, the
way `tfformer export APP --quantize MODE` (or training with `--set quantize=MODE`) does, and
each export is
- scored on the built-in test split through its serving signature (`tfformer evaluate`),
- measured: bytes of `variables/`, and latency through TF Serving's loading path
  (`serving_speed.py`'s fresh-process measurement: p50 at batch 1 and 32, items/s).
Writes benchmarks/results/quantization.json.
"""

import argparse
import importlib
import json
import os

from serving_speed import in_fresh_process
from speed import write_record

from applications.common.config import from_preset

APPLICATIONS = ("translation", "image_classification", "speech_recognition")
CONFIGS = {"translation": "TranslationConfig", "image_classification": "ImageClassificationConfig",
           "speech_recognition": "SpeechRecognitionConfig"}
SCORES = {"translation": ("chrf", "exact"), "image_classification": ("top1", "top5"),
          "speech_recognition": ("wer", "cer", "exact")}


def variables_bytes(path):
    directory = os.path.join(path, "variables")
    return sum(os.path.getsize(os.path.join(directory, name)) for name in os.listdir(directory))


def trained_run(name, root):
    """The workdir of a finished tiny run of `name`, training it when there is none."""
    workdir = os.path.join(root, name, "run")
    config_module = importlib.import_module(f"applications.{name}.config")
    config = from_preset(getattr(config_module, CONFIGS[name]), config_module.PRESETS, "tiny")
    if not os.path.exists(os.path.join(workdir, "checkpoints", "last.weights.h5")):
        train = importlib.import_module(f"applications.{name}.train").train
        train(config, workdir=workdir, export_dir=os.path.join(root, name, "trained"),
              verbose=2, examples=0)
    return workdir, config


def measure(name, root, modes):
    workdir, config = trained_run(name, root)
    restore = importlib.import_module(f"applications.{name}.restore")
    evaluate = importlib.import_module(f"applications.{name}.evaluate").evaluate
    results = {}
    for mode in ("none", *modes):
        path = restore.load(workdir, quantize=mode).export(os.path.join(root, name, mode))
        scores = evaluate(path, None, config, split="test")
        speed = in_fresh_process(name, path, warm=True)
        signature = next(key for key in speed if isinstance(speed[key], dict))
        results[mode] = {
            "export": path, "variables_bytes": variables_bytes(path),
            **{score: scores[score] for score in SCORES[name] if score in scores},
            "load_ms": speed["load_ms"], signature: speed[signature]}
        print(name, mode, json.dumps(results[mode]), flush=True)
    for mode in modes:
        results[f"{mode}_over_float"] = {
            "variables_bytes": round(results[mode]["variables_bytes"]
                                     / results["none"]["variables_bytes"], 3),
            **{f"{batch}_p50_ms": round(results[mode][signature][batch]["p50_ms"]
                                        / results["none"][signature][batch]["p50_ms"], 3)
               for batch in results["none"][signature]}}
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--applications", default=",".join(APPLICATIONS))
    parser.add_argument("--modes", default="int8", help="comma-separated: int8, int4")
    parser.add_argument("--root", default="runs/quantization_benchmark")
    args = parser.parse_args()
    modes = args.modes.split(",")
    results = {name: measure(name, args.root, modes) for name in args.applications.split(",")}
    write_record("quantization", {
        "command": "python benchmarks/quantization.py --modes " + args.modes,
        "preset": "tiny", "data": "built-in, test split", "results": results})


if __name__ == "__main__":
    main()
