"""Resuming an interrupted run: its backup, checked, and where training picks up."""

import json
import os
import shutil

import keras
import numpy as np

from applications.common.config import ConfigError
from applications.common.run_directory import (
    SET_ASIDE,
    check_no_other_run,
    config_changes,
    set_aside,
)
from applications.common.strategy import is_multi_worker, task
from applications.common.text_files import DataError

RESUME = ("auto", "require", "fresh")


def backup_dir(workdir, strategy):
    if not is_multi_worker(strategy):
        return os.path.join(workdir, "backup")
    task_type, index = task(strategy)
    return os.path.join(workdir, "backup", f"{task_type}_{index}")


def check_resume(workdir, backup, config, resume="auto"):
    """Fails before training when the run can't start or resume as asked.

    "auto" resumes a backup when there is one, else starts afresh; "require"
    (`--resume`) fails when there is none; "fresh" (`--fresh`) sets an earlier
    run aside (see `run_directory.set_aside`) and starts afresh. A backup left
    by a run with a different config (its `config.json` in `workdir`) is an
    error naming the changed settings: resuming it would mix two runs. So is
    starting afresh beside another run's trained weights
    (`run_directory.check_no_other_run`). A damaged backup is handled first
    (`check_backup`). Call it under the run's lock: it may move and replace files.
    """
    if resume not in RESUME:
        raise ValueError(f"resume must be one of {RESUME}, got {resume!r}")
    if resume == "fresh":
        set_aside(workdir)
        return
    check_backup(backup)  # it may replace a damaged generation by the one before
    if resume_epoch(backup) == 0:
        if resume == "require":
            raise ConfigError(f"--resume: there is no backup to resume in {backup} (a run "
                              f"writes one at the end of every epoch)")
        check_no_other_run(workdir, config)
        return
    changed = config_changes(workdir, config)
    if changed:  # None: a worker's temporary directory, or a run from before configs were kept
        raise ConfigError(
            f"{backup} holds a backup of a run with a different config ({'; '.join(changed)}). "
            f"Resume with the same settings, or start a new run here with --fresh (sets this "
            f"one aside in {os.path.join(workdir, SET_ASIDE)}/), or choose another --workdir.")


# One backup generation: Keras' BackupAndRestore writes the first two, RandomStateBackup the
# third; each also keeps the generation before as `<name>.bkp`.
BACKUP_FILES = ("latest.weights.h5", "training_metadata.json", "random_state.npz")


def _damage(backup_dir, suffix):
    """(file, reason) for the first unreadable file of one backup generation, or None."""
    import h5py

    def metadata(path):
        with open(path) as handle:
            int(json.load(handle)["epoch"])

    readers = {
        "latest.weights.h5": lambda path: h5py.File(path, "r").close(),
        "training_metadata.json": metadata,
        "random_state.npz": lambda path: np.load(path, allow_pickle=False).close(),
    }
    for name in BACKUP_FILES:
        path = os.path.join(backup_dir, name + suffix)
        if not os.path.exists(path):
            continue
        try:
            readers[name](path)
        except Exception as error:  # noqa: BLE001  any failure to read is damage
            return path, f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    return None


def check_backup(backup_dir):
    """Before a run resumes from `backup_dir`: if a file of the newest backup generation
    can't be read (a disk that filled up, a copy cut short), every file of the generation
    before it replaces its newer one, so weights, epoch (and with it the data position) and
    random states stay consistent; if that one is damaged too, the run is refused, naming the
    file. Keras falls back for the weights alone, and the data would be skipped an epoch too
    far."""
    newest = _damage(backup_dir, "")
    if newest is None:
        return
    previous = os.path.join(backup_dir, "training_metadata.json.bkp")
    older = _damage(backup_dir, ".bkp") if os.path.exists(previous) else ("", "")
    if older is not None:
        raise DataError(
            f"the backup in {backup_dir} can't be resumed: {newest[0]} is damaged ({newest[1]})"
            " and there is no intact older generation; delete the folder to start over")
    for name in BACKUP_FILES:
        path = os.path.join(backup_dir, name)
        if os.path.exists(path + ".bkp"):
            shutil.copyfile(path + ".bkp", path + ".restoring")
            os.replace(path + ".restoring", path)
        elif os.path.exists(path):
            os.remove(path)  # newer than the generation resumed
    print(f"{newest[0]} is damaged ({newest[1]}): resuming from the backup before it "
          f"(epoch {resume_epoch(backup_dir)})")


def resume_epoch(backup_dir):
    """The epoch a run resumes at: the one after the last backup in `backup_dir`, or 0.

    Training data is positioned with it (`skip_to_epoch`), so a resumed run
    sees exactly the batches an uninterrupted run would have.
    """
    for name in ("training_metadata.json", "training_metadata.json.bkp"):
        path = os.path.join(backup_dir, name)
        try:
            with open(path) as handle:
                return int(json.load(handle)["epoch"])
        except (OSError, ValueError, KeyError):
            continue
    return 0


def skip_to_epoch(dataset, epoch, steps_per_epoch, epochs):
    """A repeated training dataset advanced past `epoch` epochs of `steps_per_epoch` batches:
    the data position of a run resumed at that epoch (of `epochs`)."""
    announce_resume(epoch, epochs, f": skipping {epoch * steps_per_epoch} batches")
    if epoch >= epochs or not epoch:
        return dataset
    return dataset.skip(epoch * steps_per_epoch)


def announce_resume(epoch, epochs, how=""):
    """Says where a run resumed at `epoch` (of `epochs`) picks up, and `how`."""
    if epoch >= epochs:
        print(f"the backup holds all {epochs} epochs: nothing left to train")
    elif epoch:
        print(f"resuming at epoch {epoch + 1}{how}")


class RandomStateBackup(keras.callbacks.Callback):
    """Backs up the model's random-number states (dropout and other seed generators) with
    each epoch's BackupAndRestore backup and restores them on resumption.

    Keras' weight files leave seed-generator states out, so without this a
    resumed run would draw different dropout masks than an uninterrupted one.
    Written to a temporary file, then renamed: a crash never leaves half a file.
    """

    def __init__(self, backup_dir):
        super().__init__()
        self.path = os.path.join(backup_dir, "random_state.npz")

    def _states(self):
        saved = {id(v) for v in self.model.weights}
        return [v for v in self.model.variables if id(v) not in saved]

    def on_train_begin(self, logs=None):
        if not os.path.exists(self.path):
            return
        states = self._states()  # in the model's own (stable) order: paths are not unique
        with np.load(self.path) as stored:
            if len(stored.files) != len(states):
                raise ValueError(f"{self.path} holds {len(stored.files)} random states, the "
                                 f"model has {len(states)}: not this model's backup")
            for index, variable in enumerate(states):
                variable.assign(stored[f"state_{index}"])

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        if os.path.exists(self.path):  # the generation before, as BackupAndRestore keeps one
            shutil.copyfile(self.path, self.path + ".bkp.tmp")
            os.replace(self.path + ".bkp.tmp", self.path + ".bkp")
        temporary = self.path + ".tmp.npz"
        np.savez(temporary, **{f"state_{i}": np.asarray(v) for i, v in enumerate(self._states())})
        os.replace(temporary, self.path)
