"""Training under any tf.distribute strategy with Keras' own step functions and callbacks.

On one device `fit` is `model.fit`. With several replicas it drives
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
"""

import warnings

import keras
import tensorflow as tf

from applications.common.callbacks import ProgressLines
from applications.common.resume import announce_resume, resume_epoch, skip_to_epoch
from applications.common.run_options import TrainingInterrupted
from applications.common.strategy import is_multi_worker


def count_batches(dataset):
    """Batches in a finite dataset: its cardinality when known, else counted in one pass."""
    known = int(dataset.cardinality().numpy())
    if known >= 0:
        return known
    return int(dataset.reduce(0, lambda count, _: count + 1).numpy())


def fit(model, strategy, train_data, *, epochs, steps_per_epoch, validation_data=None,
        validation_steps=None, callbacks=(), verbose="auto", backup_dir=None):
    """`model.fit` on one replica; with several, its equivalent over Keras' own steps.

    `train_data` must repeat (steps_per_epoch bounds each epoch). With
    several replicas, validation runs `validation_steps` batches (default:
    as many as the validation data has) of the repeated validation data, so
    every worker runs the same number of steps.
    With `backup_dir` (the BackupAndRestore callback's), a resumed run's
    training data starts where the interrupted run's next epoch started:
    `train_data` is advanced that many epochs of batches, or, if it is a
    function, called with the epoch to make the data that starts there (a
    stream that finds its place without decoding what it passes over).
    Returns a `keras.callbacks.History`.
    """
    resume_at = resume_epoch(backup_dir) if backup_dir else 0
    if callable(train_data):  # it says where it resumes
        if resume_at >= epochs:
            announce_resume(resume_at, epochs)
        train_data = train_data(min(resume_at, epochs))
    else:
        train_data = skip_to_epoch(train_data, resume_at, steps_per_epoch, epochs)
    position = Position()
    callbacks = [*callbacks, position]
    if verbose == 2:  # one line per epoch: a log file, not a terminal
        callbacks.append(ProgressLines(epochs, steps_per_epoch))
    try:
        if strategy.num_replicas_in_sync == 1 and not is_multi_worker(strategy):
            if validation_data is not None:
                # Under the default strategy Keras builds the optimizer inside the first
                # traced step, and tf.function then traces the whole step a second time
                # (5 s of a 4-step tiny speech run's 25 in fit). Built here, it is traced once.
                with strategy.scope():
                    model._symbolic_build(data_batch=next(iter(validation_data)))
            with warnings.catch_warnings():
                # Keras warns "Your input ran out of data" at the end of a validation set
                # whose length tf.data can't know (images that may fail to decode are
                # filtered out); the training streams here never end.
                warnings.filterwarnings("ignore", message="Your input ran out of data")
                return model.fit(train_data, epochs=epochs, steps_per_epoch=steps_per_epoch,
                                 validation_data=validation_data,
                                 validation_steps=validation_steps, callbacks=callbacks,
                                 verbose=verbose, shuffle=False)
        return _fit_with_step_functions(model, strategy, train_data, epochs, steps_per_epoch,
                                        validation_data, validation_steps, callbacks, verbose)
    except KeyboardInterrupt:
        raise TrainingInterrupted("interrupted", position.epoch, position.step) from None


class Position(keras.callbacks.Callback):
    """Where training stands: `epoch` and `step` (1-based; the step about to run or
    running), for the message of an interrupted run."""

    epoch = step = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.step = epoch + 1, 1

    def on_train_batch_begin(self, batch, logs=None):
        self.step = batch + 1


def _fit_with_step_functions(model, strategy, train_data, epochs, steps_per_epoch,
                             validation_data, validation_steps, callbacks, verbose):
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
    # Without AutoGraph, as Keras' own steps: the step is written with TensorFlow's control
    # flow, and converting every layer's source on each trace costs seconds.
    if model.jit_compile:
        step = tf.function(step, jit_compile=True, reduce_retracing=True, autograph=False)

    @tf.function(reduce_retracing=True, autograph=False)
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
