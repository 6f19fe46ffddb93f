"""Training glue shared by the applications: callbacks and progress output."""

import contextlib
import json
import math
import os
import shutil
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from applications.common.run_options import PRECISIONS, TrainingDiverged
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
    os.replace(temporary, os.path.join(kept.directory, "last.weights.h5"))
    best = kept.best()
    if rule != "best" or best is None or not os.path.exists(kept.weights_path):
        print("exporting the last epoch's weights" + (
            "" if rule == "last" else " (no validation score was kept)"))
        return
    model.load_weights(kept.weights_path)
    print(f"exporting the weights of epoch {best['epoch']}, the best by {best['monitor']} "
          f"({best['value']:.4f})")


def global_sum(value):
    """`value` summed over all replicas when called in a replica context of a strategy
    with several; `value` itself otherwise (one device, or no strategy)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def global_mean(total, count, batch_size):
    """A loss that is this replica's share of the global batch's mean, total / count.

    `total` and `count` are this replica's sum and number of terms (tokens,
    utterances); `batch_size` its number of examples. One device: total /
    count. Several replicas: the gradient is that of total / (count over
    all replicas), so the replicas' summed gradients equal one device's;
    the value is scaled so that Keras' loss tracker (which multiplies by the
    replica count and weights by each replica's batch size) logs the global
    mean even when a batch splits unevenly.
    """
    context = tf.distribute.get_replica_context()
    total = tf.convert_to_tensor(total)
    count = tf.cast(count, total.dtype)
    if context is None or context.num_replicas_in_sync == 1:
        return total / tf.maximum(count, 1.0)
    share = total / tf.maximum(global_sum(count), 1.0)
    batch_size = tf.cast(batch_size, total.dtype)
    replicas = float(context.num_replicas_in_sync)
    logged = tf.math.divide_no_nan(share * global_sum(batch_size), replicas * batch_size)
    return share + tf.stop_gradient(logged - share)


def warmup_cosine_schedule(learning_rate, warmup_fraction, total_steps):
    """Linear warm-up to `learning_rate` over a fraction of the steps, then cosine decay to 0,
    in global steps."""
    warmup = max(1, int(total_steps * warmup_fraction))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0, decay_steps=max(1, total_steps - warmup),
        warmup_target=learning_rate, warmup_steps=warmup)


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


def skip_to_epoch(dataset, epoch, steps_per_epoch):
    """A repeated training dataset advanced past `epoch` epochs of `steps_per_epoch` batches:
    the data position of a run resumed at that epoch."""
    if epoch:
        print(f"resuming at epoch {epoch + 1}: skipping {epoch * steps_per_epoch} batches")
    return dataset.skip(epoch * steps_per_epoch) if epoch else dataset


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


@contextlib.contextmanager
def precision_policy(mixed_precision="none"):
    """Sets Keras' global dtype policy for building and training, then restores it.

    "bf16" -> mixed_bfloat16; "fp16" -> mixed_float16 (Keras then wraps the
    optimizer in a LossScaleOptimizer when the model is compiled).
    """
    if mixed_precision not in PRECISIONS:
        raise ValueError(f"mixed_precision must be one of {sorted(PRECISIONS)}, "
                         f"got {mixed_precision!r}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(PRECISIONS[mixed_precision])
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
