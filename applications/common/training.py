"""Training glue shared by the applications: callbacks and progress output."""

import os
import sys

import keras


def standard_callbacks(workdir, monitor="val_loss", mode="min"):
    """Backup for resuming after a crash, the best weights, and TensorBoard logs."""
    return [
        keras.callbacks.BackupAndRestore(os.path.join(workdir, "backup")),
        keras.callbacks.ModelCheckpoint(
            os.path.join(workdir, "checkpoints", "best.weights.h5"), monitor=monitor, mode=mode,
            save_best_only=True, save_weights_only=True),
        keras.callbacks.TensorBoard(os.path.join(workdir, "logs")),
    ]


def progress_verbosity(verbose="auto"):
    """A progress bar on a terminal, one line per epoch in a log file."""
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return verbose
