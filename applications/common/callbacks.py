"""The Keras callbacks every application trains with: checkpoints, backups, logs, progress,
the best weights, and a stop when the loss diverges."""

import json
import math
import os
import sys
import time

import keras

from applications.common.restore import load_weights_file
from applications.common.resume import RandomStateBackup
from applications.common.run_options import TrainingDiverged
from applications.common.text_files import DataError


def standard_callbacks(workdir, monitor="val_loss", mode="min", backup_dir=None):
    """Stop on a non-finite loss, a backup for resuming after a crash (in `backup_dir`,
    default `workdir/backup`), the best weights, and TensorBoard logs."""
    return [
        StopOnNonFiniteLoss(workdir),
        # Kept after training: `run_training` deletes it once the export is written, so a run
        # whose export failed can be exported by running the same command again.
        keras.callbacks.BackupAndRestore(backup_dir or os.path.join(workdir, "backup"),
                                         double_checkpoint=True, delete_checkpoint=False),
        RandomStateBackup(backup_dir or os.path.join(workdir, "backup")),
        BestWeights(os.path.join(workdir, "checkpoints"), monitor=monitor, mode=mode),
        keras.callbacks.TensorBoard(os.path.join(workdir, "logs")),
    ]


class BestWeights(keras.callbacks.Callback):
    """Keeps the weights of the epoch with the best `monitor` value in
    `directory/best.weights.h5`, and that epoch and value in `directory/best.json`.

    Written instead of using Keras' `ModelCheckpoint(save_best_only=True)`, which writes the
    file in place (a crash mid-write leaves a broken file) and forgets its best value when a
    run resumes (a resumed run's first epoch would replace a better epoch's weights). Here
    both files are written to temporary names and renamed.
    """

    def __init__(self, directory, monitor="val_loss", mode="min"):
        super().__init__()
        self.directory, self.monitor, self.mode = directory, monitor, mode
        self.weights_path = os.path.join(directory, "best.weights.h5")
        self.record_path = os.path.join(directory, "best.json")

    def best(self):
        """{"epoch", "monitor", "value"} of the kept weights, or None."""
        try:
            with open(self.record_path) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return
        value, best = float(value), self.best()
        if best is not None and os.path.exists(self.weights_path) and not (
                value < best["value"] if self.mode == "min" else value > best["value"]):
            return
        os.makedirs(self.directory, exist_ok=True)
        temporary = os.path.join(self.directory, ".best.tmp.weights.h5")
        self.model.save_weights(temporary)
        with open(self.record_path + ".tmp", "w") as handle:
            json.dump({"epoch": epoch + 1, "monitor": self.monitor, "value": value}, handle)
        os.replace(temporary, self.weights_path)
        os.replace(self.record_path + ".tmp", self.record_path)


def use_export_weights(model, workdir, rule):
    """Loads the weights `rule` picks into `model` before it is evaluated and exported:
    "best", the epoch with the best validation score (as `restore_best_weights` in Keras'
    EarlyStopping), when one was kept; "last", the weights training ended with (kept as
    `checkpoints/last.weights.h5` either way)."""
    kept = BestWeights(os.path.join(workdir, "checkpoints"))
    # The last epoch's weights too, for `tfformer export --weights last` once the backup is gone.
    temporary = os.path.join(kept.directory, ".last.tmp.weights.h5")
    os.makedirs(kept.directory, exist_ok=True)
    model.save_weights(temporary)
    last = os.path.join(kept.directory, "last.weights.h5")
    os.replace(temporary, last)
    best = kept.best()
    if rule != "best" or best is None or not os.path.exists(kept.weights_path):
        print("exporting the last epoch's weights" + (
            "" if rule == "last" else " (no validation score was kept)"))
        return
    try:
        load_weights_file(model, kept.weights_path, "exporting the last epoch's weights")
    except DataError as error:
        print(error)
        model.load_weights(last)
        return
    print(f"exporting the weights of epoch {best['epoch']}, the best by {best['monitor']} "
          f"({best['value']:.4f})")


def progress_verbosity(verbose="auto"):
    """A progress bar on a terminal, one line per epoch in a log file."""
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return verbose


class ProgressLines(keras.callbacks.Callback):
    """Progress for logs that are not a terminal, where Keras prints one line per epoch (after
    a long silence): a line when training starts and one every tenth of an epoch (at most
    every 100 steps) with the running loss and the speed."""

    def __init__(self, epochs, steps_per_epoch):
        super().__init__()
        self.epochs, self.steps = epochs, steps_per_epoch
        self.every = max(1, min(100, steps_per_epoch // 10))

    def on_train_begin(self, logs=None):
        print(f"training: {self.epochs} epochs of {self.steps} steps; a line every "
              f"{self.every} steps", flush=True)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.started = epoch, time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if (batch + 1) % self.every or batch + 1 == self.steps:
            return
        rate = (batch + 1) / max(time.perf_counter() - self.started, 1e-9)
        loss = float((logs or {}).get("loss", float("nan")))
        print(f"epoch {self.epoch + 1}/{self.epochs}, step {batch + 1}/{self.steps}: loss "
              f"{loss:.4f} ({rate:.1f} steps/s)", flush=True)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite.

    Unlike Keras' TerminateOnNaN it raises an error naming the global step,
    epoch and batch, so a script fails loudly; checkpoints and the
    BackupAndRestore backup are written only at epoch ends, so the last good
    ones are kept.
    """

    def __init__(self, workdir=None):
        super().__init__()
        self.workdir = workdir
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            step = int(self.model.optimizer.iterations.numpy())
            kept = f"; the last good checkpoint is kept in {self.workdir}" if self.workdir else ""
            raise TrainingDiverged(
                f"loss became {float(loss)} at step {step} (epoch {self.epoch + 1}, batch "
                f"{batch + 1}); training stopped{kept}. Lower the learning rate or use bf16 "
                f"rather than fp16.")
