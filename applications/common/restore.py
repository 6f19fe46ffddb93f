"""Reading a training run back from its work directory: its config, what its data defined
(class names, vocabulary), and the weights to use."""

import dataclasses
import json
import os

from applications.common.config import ConfigError
from applications.common.run_directory import application_name, with_article
from applications.common.text_files import DataError

RUN_INFO = "run_info.json"  # what the data defined: class names, output symbols, word list


def write_run_info(workdir, **info):
    """Writes `info` (JSON-able) beside config.json, atomically."""
    path = os.path.join(workdir, RUN_INFO)
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(info, handle, ensure_ascii=False, indent=1)
    os.replace(path + ".tmp", path)


def _read_json(workdir, name):
    path = os.path.join(workdir, name)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise DataError(f"{workdir} holds no training run: {name} is missing") from None
    except ValueError as error:
        raise DataError(f"{path} is damaged ({error}); it can't be read back") from None


def read_run(workdir, config_class, needs=()):
    """(config, run info) of the run in `workdir`; `needs` names the run-info keys the
    application must find."""
    fields = _read_json(workdir, "config.json")
    try:
        config = config_class(**fields)
    except TypeError as error:
        owner = _owner(fields)
        if owner and owner != application_name(config_class):
            raise ConfigError(f"{workdir} holds {with_article(owner)} run, not "
                              f"{with_article(application_name(config_class))} one: name its "
                              f"application, as in `tfformer export {owner} --workdir "
                              f"{workdir}`") from None
        raise ConfigError(f"{workdir}/config.json does not fit this version: {error}") from None
    info = _read_json(workdir, RUN_INFO) if os.path.exists(
        os.path.join(workdir, RUN_INFO)) else {}
    missing = [key for key in needs if key not in info]
    if missing:
        raise DataError(f"{workdir} has no {', '.join(missing)} ({RUN_INFO}): it was trained "
                        "by an older version; train it again")
    return config, info


def _owner(fields):
    """The name of the application whose config has every field in `fields`, or None."""
    from applications.common.registry import discover

    for name, application in discover().items():
        if set(fields) <= {field.name for field in dataclasses.fields(application.config_class)}:
            return name
    return None


def restore_weights(model, workdir, rule):
    """Loads the weights `rule` picks (see `weights_path`) into `model`; returns their path
    relative to `workdir`."""
    path = weights_path(workdir, rule)
    load_weights_file(model, path, f"export the other weights with --weights "
                      f"{'last' if rule == 'best' else 'best'}")
    return os.path.relpath(path, workdir)


def load_weights_file(model, path, way_out):
    """`model.load_weights(path)`; a file that can't be read (cut short, corrupt) is a
    DataError naming it and `way_out`, not h5py's traceback."""
    import h5py

    try:
        with h5py.File(path, "r"):
            pass
        model.load_weights(path)  # OSError too when h5py reads a dataset past a cut
    except OSError as error:
        reason = str(error).splitlines()[0][:200]
        raise DataError(f"{path} is damaged ({reason}); {way_out}") from None


def weights_path(workdir, rule):
    """The weights file `rule` ("best" or "last") picks in a finished or interrupted run:
    "best" the best validation epoch's; "last" those training ended with, or for a run
    that was interrupted, its last backup's. Falls back to the other when one is missing."""
    checkpoints = os.path.join(workdir, "checkpoints")
    best = os.path.join(checkpoints, "best.weights.h5")
    last = [os.path.join(checkpoints, "last.weights.h5"),
            os.path.join(workdir, "backup", "latest.weights.h5")]
    order = [best, *last] if rule == "best" else [*last, best]
    for path in order:
        if os.path.exists(path):
            return path
    raise DataError(f"{workdir} holds no trained weights yet (no checkpoints/ and no backup/): "
                    "train at least one epoch first")
