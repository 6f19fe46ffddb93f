"""Writing an imported checkpoint as a run directory that `export`, `evaluate` and
`train --init-from` read as they read a trained one: `config.json`, `run_info.json`,
`checkpoints/last.weights.h5` and any files the run needs (a tokenizer).

The run is written beside the workdir and renamed into place, so an import that fails
leaves no run behind."""

import json
import os
import shutil

from applications.common.config import to_json
from applications.common.restore import write_run_info
from tfformer.pretrained import CheckpointError


def read_json_object(path, required=True, hint=""):
    """The JSON object in `path`; {} when it is missing and not `required` (when it is,
    the error says so, then `hint`)."""
    if not os.path.exists(path):
        if required:
            raise CheckpointError(f"{os.path.dirname(path) or '.'} has no "
                                  f"{os.path.basename(path)}{hint}")
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path} can't be read as JSON: {error}") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path} holds a {type(value).__name__}, not a JSON object")
    return value


def check_new_workdir(directory, workdir):
    if not os.path.isdir(directory):
        raise CheckpointError(f"{directory} is not a directory")
    if os.path.isdir(workdir) and os.listdir(workdir):
        raise CheckpointError(f"{workdir} is not empty; import into a new --workdir")


def write_imported_run(workdir, config, model, run_info, files=None):
    """Writes the run; `files` maps a path inside the run (such as "tokenizer/vocab.json")
    to the file to copy there."""
    staging = workdir.rstrip(os.sep) + ".importing"
    shutil.rmtree(staging, ignore_errors=True)  # a failed import's leftovers
    os.makedirs(os.path.join(staging, "checkpoints"))
    for target, source in (files or {}).items():
        os.makedirs(os.path.dirname(os.path.join(staging, target)), exist_ok=True)
        shutil.copyfile(source, os.path.join(staging, target))
    model.save_weights(os.path.join(staging, "checkpoints", "last.weights.h5"))
    with open(os.path.join(staging, "config.json"), "w") as handle:
        handle.write(to_json(config))
    write_run_info(staging, **run_info)
    if os.path.isdir(workdir):
        os.rmdir(workdir)  # empty, checked by check_new_workdir
    os.replace(staging, workdir)
