"""One run per work directory: a new run never starts among another run's weights, and
`--fresh` sets the old run aside instead of deleting it.

A run directory's trained results (`checkpoints/`: the best epoch's weights and score, the
last weights) belong to the config in its `config.json`. A run that resumes its backup
continues them; a run that starts afresh would otherwise train beside them, and the export
would pick the old run's "best" epoch (or fail to load a model of another shape) after the
whole of the new training.
"""

import json
import os
import shutil
import time

from applications.common.config import ConfigError, to_json

SET_ASIDE = "set_aside"  # where --fresh moves earlier runs, one folder each


def config_changes(workdir, config):
    """["field: old -> new", ...] between the run recorded in `workdir/config.json` and
    `config`; None when there is no readable record."""
    try:
        with open(os.path.join(workdir, "config.json")) as handle:
            previous = json.load(handle)
    except (OSError, ValueError):
        return None
    current = json.loads(to_json(config))
    return [f"{key}: {previous.get(key)!r} -> {current.get(key)!r}"
            for key in sorted(set(previous) | set(current))
            if previous.get(key) != current.get(key)]


def trained_files(workdir):
    """The files of `workdir/checkpoints` a finished or interrupted run left (relative)."""
    directory = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(directory):
        return []
    return sorted(os.path.join("checkpoints", name) for name in os.listdir(directory)
                  if not name.startswith("."))


def application_name(config):
    """The application a config (or config class) belongs to, for the commands an error
    suggests."""
    parts = (config if isinstance(config, type) else type(config)).__module__.split(".")
    return parts[1] if parts[0] == "applications" and len(parts) > 2 else "APPLICATION"


def with_article(name):
    """"translation" -> "a translation", "image_classification" -> "an image classification"."""
    kind = name.replace("_", " ")
    return ("an " if kind[:1] in "aeiou" else "a ") + kind


def check_no_other_run(workdir, config):
    """Before a run that starts afresh (no backup to resume): refuses a `workdir` that holds
    another run's trained weights, naming what differs and the ways out. Called only when
    there is no backup: a backup with another config is refused by `check_resume`."""
    kept = trained_files(workdir)
    if not kept:
        return
    changes = config_changes(workdir, config)
    name = application_name(config)
    fresh = (f"start a new run here with --fresh (sets the old one aside in "
             f"{os.path.join(workdir, SET_ASIDE)}/), or choose another --workdir")
    if changes is None:
        what = f"trained weights ({', '.join(kept)}) of a run without a readable config.json"
    elif changes:
        what = f"a run with a different config ({'; '.join(changes)})"
    else:
        raise ConfigError(
            f"{workdir} holds a finished run of this config; export it again with `tfformer "
            f"export {name} --workdir {workdir}`, or {fresh}")
    raise ConfigError(f"{workdir} holds {what}: training here would mix the two runs; {fresh}")


def set_aside(workdir):
    """Moves everything an earlier run left in `workdir` (but the run locks and earlier
    set-aside runs) into `workdir/set_aside/<time>/`; returns that folder, or None when there
    was nothing to move."""
    if not os.path.isdir(workdir):
        return None
    names = [name for name in os.listdir(workdir)
             if name != SET_ASIDE and not name.endswith(".lock")]
    if not names:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = os.path.join(workdir, SET_ASIDE, stamp)
    suffix = 1
    while os.path.exists(target):
        suffix += 1
        target = os.path.join(workdir, SET_ASIDE, f"{stamp}-{suffix}")
    os.makedirs(target)
    for name in names:
        shutil.move(os.path.join(workdir, name), os.path.join(target, name))
    print(f"--fresh: the earlier run in {workdir} is set aside in {target}")
    return target
