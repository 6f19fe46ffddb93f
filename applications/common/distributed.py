"""Training under any tf.distribute strategy with Keras' own step functions and callbacks.

On one device `fit` below is `model.fit`. With several replicas it drives
Keras' per-replica `train_step` / `test_step` itself, with `strategy.run`,
under the same callbacks, progress bar, history and validation as
`model.fit`, because Keras 3.15's `fit` breaks there on TF 2.21:

- under `MultiWorkerMirroredStrategy`, `fit` and `evaluate` fail before the
  first step (keras-team/keras#20585): their symbolic-build pre-pass
  reduces a distributed batch eagerly ("Attempt to convert a value
  (PerReplica...)"), and their step functions reduce scalar logs with
  `axis=0`, which multi-worker reductions reject;
- under `MirroredStrategy` the same pre-pass fails whenever the first batch
  does not split evenly over the replicas (a validation batch of 1 example
  on 2 replicas: "Inputs to operation AddN ... must have the same size").

Multi-worker rules: every worker trains, restores and exports (saving may
run collective ops); only the chief's TensorBoard logs, checkpoints and
export are kept, the others write to temporary directories that are
deleted. Each worker keeps its own `BackupAndRestore` backup under
`backup/<task>_<index>`, so every worker can resume.
"""

import contextlib
import json
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from applications.common.config import ConfigError, to_json
from applications.common.run_lock import run_lock
from applications.common.strategy import check_mixed_precision, make_strategy
from applications.common.training import (
    ProgressLines,
    check_backup,
    resume_epoch,
    skip_to_epoch,
)


def is_multi_worker(strategy):
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def task(strategy):
    """(task type, task index) of this process; ("worker", 0) outside a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return "worker", 0
    return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy):
    """The chief: task "chief", or worker 0 in a cluster without one."""
    if not is_multi_worker(strategy):
        return True
    task_type, index = task(strategy)
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    return task_type == "chief" or (task_type == "worker" and index == 0 and "chief" not in cluster)


@contextlib.contextmanager
def writable_dir(path, strategy):
    """`path` on the chief; a temporary directory, deleted afterwards, on other workers."""
    if is_chief(strategy):
        yield path
        return
    temporary = tempfile.mkdtemp(prefix="tfformer_worker_")
    try:
        yield os.path.join(temporary, os.path.basename(os.path.normpath(path)) or "out")
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def backup_dir(workdir, strategy):
    if not is_multi_worker(strategy):
        return os.path.join(workdir, "backup")
    task_type, index = task(strategy)
    return os.path.join(workdir, "backup", f"{task_type}_{index}")


def count_batches(dataset):
    """Batches in a finite dataset: its cardinality when known, else counted in one pass."""
    known = int(dataset.cardinality().numpy())
    if known >= 0:
        return known
    return int(dataset.reduce(0, lambda count, _: count + 1).numpy())


def run_training(body, config, data_dir, workdir, export_dir, strategy, resume="auto",
                 **options):
    """Calls an application's `body(config, data_dir, workdir, export_dir, strategy,
    backup_dir=..., **options)` with the strategy made from its name and the multi-worker
    rules applied: only the chief keeps logs, checkpoints and the export. A backup in
    `workdir` is resumed (see `check_resume`)."""
    strategy = make_strategy(strategy) if isinstance(strategy, str) else strategy
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ConfigError(f"the global batch_size={config.batch_size} does not split evenly "
                          f"over {replicas} replicas; use a multiple of {replicas}")
    check_mixed_precision(options.get("mixed_precision", "none"), strategy)
    backup = backup_dir(workdir, strategy)
    check_resume(workdir, backup, config, resume)
    if is_chief(strategy):
        check_writable(workdir, "--workdir")
        check_writable(export_dir, "--export-dir")
    task_type, index = task(strategy)
    with run_lock(workdir, f"{task_type}_{index}"):
        check_backup(backup)  # under the lock: it may replace a damaged generation
        with writable_dir(workdir, strategy) as run_dir, \
                writable_dir(export_dir, strategy) as export_base:
            result = body(config, data_dir, run_dir, export_base, strategy, backup_dir=backup,
                          **options)
        # Only now, with the export written: had it failed, the same command would resume
        # the finished training from this backup and export again.
        shutil.rmtree(backup, ignore_errors=True)
    return result


def check_writable(path, option):
    """Fails before any training if `path` could not be created or written to; creates
    nothing."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    problem = (f"{existing} is not a directory" if not os.path.isdir(existing) else
               f"{existing} is not writable" if not os.access(existing, os.W_OK | os.X_OK)
               else None)
    if problem:
        raise ConfigError(f"{option} {path} can't be written: {problem}; choose another "
                          f"{option}")


RESUME = ("auto", "require")


def check_resume(workdir, backup, config, resume="auto"):
    """Fails before training when the backup in `backup` can't be resumed.

    "auto" resumes a backup when there is one, else starts afresh; "require"
    (`--resume`) fails when there is none. Either way a backup left by a run
    with a different config (its `config.json` in `workdir`) is an error
    naming the changed settings: resuming it would mix two runs.
    """
    if resume not in RESUME:
        raise ValueError(f"resume must be one of {RESUME}, got {resume!r}")
    if resume_epoch(backup) == 0:
        if resume == "require":
            raise ConfigError(f"--resume: there is no backup to resume in {backup} (a run "
                              f"writes one at the end of every epoch)")
        return
    try:
        with open(os.path.join(workdir, "config.json")) as handle:
            previous = json.load(handle)
    except (OSError, ValueError):
        return  # a worker's temporary directory, or a run from before configs were kept
    current = json.loads(to_json(config))
    changed = [f"{key}: {previous.get(key)!r} -> {current.get(key)!r}"
               for key in sorted(set(previous) | set(current))
               if previous.get(key) != current.get(key)]
    if changed:
        raise ConfigError(
            f"{backup} holds a backup of a run with a different config ({'; '.join(changed)}). "
            f"Resume with the same settings, or start over with a new --workdir (or delete "
            f"{backup}).")


def fit(model, strategy, train_data, *, epochs, steps_per_epoch, validation_data=None,
        validation_steps=None, callbacks=(), verbose="auto", backup_dir=None):
    """`model.fit` on one replica; with several, its equivalent over Keras' own steps.

    `train_data` must repeat (steps_per_epoch bounds each epoch). With
    several replicas, validation runs `validation_steps` batches (default:
    as many as the validation data has) of the repeated validation data, so
    every worker runs the same number of steps.
    With `backup_dir` (the BackupAndRestore callback's), a resumed run's
    training data starts where the interrupted run's next epoch started.
    Returns a `keras.callbacks.History`.
    """
    resume_at = resume_epoch(backup_dir) if backup_dir else 0
    if verbose == 2:  # one line per epoch: a log file, not a terminal
        callbacks = [*callbacks, ProgressLines(epochs, steps_per_epoch)]
    if strategy.num_replicas_in_sync == 1 and not is_multi_worker(strategy):
        train_data = skip_to_epoch(train_data, resume_at, steps_per_epoch)
        return model.fit(train_data, epochs=epochs, steps_per_epoch=steps_per_epoch,
                         validation_data=validation_data, validation_steps=validation_steps,
                         callbacks=list(callbacks), verbose=verbose, shuffle=False)
    return _fit_with_step_functions(model, strategy, train_data, epochs, steps_per_epoch,
                                    validation_data, validation_steps, callbacks, verbose,
                                    resume_at)


def _fit_with_step_functions(model, strategy, train_data, epochs, steps_per_epoch,
                             validation_data, validation_steps, callbacks, verbose, resume_at):
    if validation_data is not None:
        validation_steps = validation_steps or count_batches(validation_data)
        validation_data = validation_data.repeat()
    with strategy.scope():
        # What fit's failing pre-pass would do, from one local (not distributed) batch:
        # build the compiled loss, metrics and optimizer before the first traced step.
        # From a validation batch when there is one: an extra iterator over the training
        # data would shift its reshuffling (and a one-device run opens none).
        model._symbolic_build(data_batch=next(iter(
            validation_data if validation_data is not None else train_data)))
    train_data = skip_to_epoch(train_data, resume_at, steps_per_epoch)
    train_iterator = iter(strategy.experimental_distribute_dataset(train_data))
    validation = (strategy.experimental_distribute_dataset(validation_data)
                  if validation_data is not None else None)
    train_function = _step_function(model, strategy, model.train_step)
    test_function = _step_function(model, strategy, model.test_step)
    callback_list = keras.callbacks.CallbackList(
        list(callbacks), add_history=True, add_progbar=verbose != 0, verbose=verbose,
        epochs=epochs, steps=steps_per_epoch, model=model)
    model.stop_training = False
    callback_list.on_train_begin()
    initial_epoch = getattr(model, "_initial_epoch", None) or 0  # set by BackupAndRestore
    logs = {}
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        for step in range(steps_per_epoch):
            callback_list.on_train_batch_begin(step)
            logs = train_function(train_iterator)
            callback_list.on_train_batch_end(step, logs)
            if model.stop_training:
                break
        epoch_logs = {name: float(value) for name, value in
                      model._get_metrics_result_or_logs(logs).items()}
        if validation is not None:
            epoch_logs.update(_evaluate(model, test_function, validation, validation_steps,
                                        callback_list))
        callback_list.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    callback_list.on_train_end(logs=epoch_logs if epochs > initial_epoch else {})
    return model.history


def _step_function(model, strategy, step):
    """One Keras step on every replica of every worker; logs averaged over replicas."""
    if model.jit_compile:
        step = tf.function(step, jit_compile=True, reduce_retracing=True)

    @tf.function(reduce_retracing=True)
    def run(iterator):
        logs = strategy.run(step, args=(next(iterator),))
        return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), logs)

    return run


def _evaluate(model, test_function, validation, steps, callback_list):
    model.reset_metrics()
    callback_list.on_test_begin()
    iterator = iter(validation)
    logs = {}
    for step in range(steps):
        callback_list.on_test_batch_begin(step)
        logs = test_function(iterator)
        callback_list.on_test_batch_end(step, logs)
    results = {name: float(value) for name, value in
               model._get_metrics_result_or_logs(logs).items()}
    callback_list.on_test_end(results)
    return {"val_" + name: value for name, value in results.items()}
