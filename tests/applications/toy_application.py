"""A fourth application in a few lines: what the CLI needs from one, and nothing else."""

import dataclasses
import json
import os

from applications.common.registry import Application, ClientCommand


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    repeats: int = 2  # how many times the export says its word
    word: str = "toy"  # what it says


def train(config, data_dir=None, workdir="runs/toy", export_dir="saved_models/toy", **options):
    os.makedirs(export_dir, exist_ok=True)
    with open(os.path.join(export_dir, "export.json"), "w") as handle:
        json.dump({"said": " ".join([config.word] * config.repeats), **options}, handle)


def evaluate(model_path, data_dir, config, split="test", output=None):
    with open(os.path.join(model_path, "export.json")) as handle:
        said = json.load(handle)["said"]
    return {"summary": f"{split}: {len(said.split())} words"}


def _echo_arguments(parser):
    parser.add_argument("model")


def _echo(args):
    with open(os.path.join(args.model, "export.json")) as handle:
        print(json.load(handle)["said"])
    return 0


APPLICATION = Application(
    name="toy", summary="says a word", config_class=ToyConfig,
    presets={"tiny": {}, "loud": {"repeats": 5}}, train=train, evaluate=evaluate,
    load=None, serving_input="word", client=ClientCommand("echo", "say it", _echo_arguments, _echo),
    evaluate_output="nothing")
