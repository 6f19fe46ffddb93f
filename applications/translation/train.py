"""Training the translation model: data, tokenizers, fit, evaluation, export."""

import json
import math
import os
import shutil
import warnings

import keras
from keras import ops

from applications.common import bad_examples, distributed_fit, training_run
from applications.common.callbacks import progress_verbosity, standard_callbacks, use_export_weights
from applications.common.config import ConfigError, to_json
from applications.common.data_service import offloaded
from applications.common.precision import precision_policy
from applications.common.quantization import quantize_for_export
from applications.common.replica_metrics import global_mean
from applications.common.restore import restore_weights, write_run_info
from applications.common.strategy import input_worker
from applications.common.text_files import DataError
from applications.translation import corpus, data, evaluate, serving, vocabularies
from applications.translation.config import TranslationConfig
from applications.translation.model import build_translator
from tfformer.losses import sparse_categorical_crossentropy
from tfformer.optimizers import Adam
from tfformer.schedules import TransformerSchedule


@keras.saving.register_keras_serializable(package="tfformer_applications")
class MaskedCrossEntropy(keras.losses.Loss):
    """Label-smoothed cross-entropy averaged over the global batch's non-padding tokens
    (labels equal to `padding_id` are padding).

    Under a strategy each replica's gradient is that of its share (its token
    losses over the token count of all replicas), so training is the same on
    one device or many; see `global_mean`. (Keras leaves a scalar loss
    unscaled and sums the replicas' gradients.)"""

    def __init__(self, label_smoothing=0.1, padding_id=0, name="masked_cross_entropy",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing
        self.padding_id = padding_id

    def call(self, y_true, y_pred):
        losses = sparse_categorical_crossentropy(y_true, y_pred, self.label_smoothing)  # (B, T)
        mask = ops.cast(ops.not_equal(y_true, self.padding_id), losses.dtype)
        return global_mean(ops.sum(losses * mask), ops.sum(mask), ops.shape(y_true)[0])

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing,
                "padding_id": self.padding_id}


@keras.saving.register_keras_serializable(package="tfformer_applications")
class MaskedAccuracy(keras.metrics.Metric):
    """Next-token accuracy over non-padding labels, weighted by token count."""

    def __init__(self, padding_id=0, name="masked_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.padding_id = padding_id
        self.correct = self.add_variable((), initializer="zeros", name="correct")
        self.total = self.add_variable((), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        mask = ops.not_equal(y_true, self.padding_id)
        hits = ops.logical_and(ops.equal(y_true, ops.cast(ops.argmax(y_pred, -1), "int32")), mask)
        self.correct.assign_add(ops.sum(ops.cast(hits, "float32")))
        self.total.assign_add(ops.sum(ops.cast(mask, "float32")))

    def result(self):
        return self.correct / ops.maximum(self.total, 1.0)

    def get_config(self):
        return {**super().get_config(), "padding_id": self.padding_id}


def _tokenizers(workdir, config, pairs, same_tokenizer_config, init_from=None):
    """Writes the run's tokenizer to `workdir/tokenizer/`: `init_from`'s, or SentencePiece
    models trained on `pairs` (a sample of the training data) unless the run resumes with
    the same tokenizer settings (the checkpoint's embeddings index them)."""
    directory, names = vocabularies.tokenizer_files(workdir, config)
    paths = [os.path.join(directory, name) for name in names]
    if init_from:
        origin, _ = vocabularies.tokenizer_files(init_from, config)
        os.makedirs(directory, exist_ok=True)
        for name, path in zip(names, paths):
            shutil.copyfile(os.path.join(origin, name), path)
        print(f"tokenizer: {origin}'s")
        return
    if same_tokenizer_config and all(os.path.exists(path) for path in paths):
        print(f"reusing the tokenizer in {directory}")
        return
    protos = data.train_tokenizers(pairs, config)
    os.makedirs(directory, exist_ok=True)
    for path, proto in zip(paths, protos):
        with open(path, "wb") as handle:
            handle.write(proto)


def _check_lengths(sample, target_vocabulary, config):
    """Says how much of the training data is left out for its length, from the sample."""
    share = data.long_share(sample, target_vocabulary, config)
    if sample and share == 1.0:
        raise DataError(f"every pair of a sample of {len(sample)} training pairs has a target "
                        f"longer than max_target_length={config.max_target_length} tokens: "
                        "raise it with --set max_target_length=...")
    if share:
        print(f"about {100 * share:.2g}% of the training pairs (in a sample of {len(sample)}) "
              f"have targets longer than max_target_length={config.max_target_length} "
              "tokens; they are left out")


# The fields a trained tokenizer depends on; others (epochs, model size) may change
# between a run and its resumption.
_TOKENIZER_FIELDS = ("source_language", "target_language", "builtin_examples", "seed",
                     "vocabulary_size", "shared_vocabulary", "tokenizer_model_type",
                     "tokenizer_sample")


def _same_tokenizer_config(workdir, config):
    """Whether the run in `workdir` (its config.json) trained its tokenizer as `config` would."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return False
    with open(path) as handle:
        previous = json.load(handle)
    defaults = TranslationConfig()  # a field newer than the run's config has its default
    return all(previous.get(field, getattr(defaults, field)) == getattr(config, field)
               for field in _TOKENIZER_FIELDS)


def train(config, data_dir=None, workdir="runs/translation",
          export_dir="saved_models/translation", strategy="auto", verbose="auto",
          mixed_precision="none", jit_compile=False, examples=5, resume="auto",
          init_from=None, data_service=None):
    """Trains, evaluates on the test split (val if there is none) and exports.

    `mixed_precision` is "none", "bf16" or "fp16" (with loss scaling);
    `jit_compile` compiles the training step with XLA. `init_from`: the directory of a
    finished or imported run (`tfformer import`) to start from, its weights and tokenizer:
    fine-tuning. `config` must have its architecture (see `config.ARCHITECTURE`).
    `data_service`: a tf.data service dispatcher ("grpc://HOST:PORT") whose workers run
    the training input pipeline (`applications.common.data_service`).

    Returns a dict with the Keras history, the scores, the export path and
    the server module.
    """
    if config.tokenizer == "marian" and not init_from:
        raise ConfigError("tokenizer=marian is a Marian checkpoint's: import one with `tfformer "
                          "import translation --from DIR --workdir RUN`, then fine-tune it "
                          "with `tfformer train translation --init-from RUN`")
    return training_run.run_training(
        _train, config, data_dir, workdir, export_dir, strategy, resume=resume, verbose=verbose,
        mixed_precision=mixed_precision, jit_compile=jit_compile, examples=examples,
        init_from=init_from, data_service=data_service)


def _train(config, data_dir, workdir, export_dir, strategy, backup_dir, verbose,
           mixed_precision, jit_compile, examples, init_from, data_service):
    keras.utils.set_random_seed(config.seed)
    # Length-bucketed validation data has no known size, and Keras warns at its
    # (expected) end on every epoch.
    warnings.filterwarnings("ignore", message="Your input ran out of data")
    splits = corpus.list_corpus(data_dir, config)
    print("data: " + ", ".join(f"{name} {split.count} pairs" for name, split in splits.items()))
    same_tokenizer_config = _same_tokenizer_config(workdir, config)
    os.makedirs(workdir, exist_ok=True)  # only once the data listed: a run's config stays
    with open(os.path.join(workdir, "config.json"), "w") as handle:
        handle.write(to_json(config))
    with bad_examples.bad_data_errors():
        sample = data.sample_pairs(splits["train"], data.tokenizer_pairs(config))
    _tokenizers(workdir, config, sample, same_tokenizer_config, init_from)
    source_vocabulary, target_vocabulary = vocabularies.load_vocabularies(workdir, config)
    source_size, target_size = source_vocabulary.size, target_vocabulary.size
    print(f"vocabulary: {source_size} subwords shared by both languages"
          if config.shared_vocabulary else
          f"vocabulary: {source_size} source and {target_size} target subwords")
    _check_lengths(sample, target_vocabulary, config)
    worker = input_worker(strategy)
    if worker[1] > 1:
        share, how = splits["train"].share(*worker)
        print(f"worker {worker[0]} of {worker[1]} reads {share.count} of the "
              f"{splits['train'].count} training pairs (sharded {how})")
    steps = config.steps_per_epoch or math.ceil(splits["train"].count / config.batch_size)
    os.makedirs(backup_dir, exist_ok=True)
    skipped_log = os.path.join(backup_dir, bad_examples.LOG_NAME)  # read back on resuming

    def train_data(resume_at):
        consumed = resume_at * steps * (config.batch_size // worker[1])
        start = data.training_start(splits["train"], config, consumed, worker, skipped_log)
        if start[0]:
            print(f"resuming at epoch {resume_at + 1}: the training stream starts at pair "
                  f"{start[0]} (counting every pass over the training pairs)")
        return offloaded(data.training_batches(
            splits["train"], source_vocabulary, target_vocabulary, config, start, worker,
            skipped_log, offloaded=bool(data_service)), data_service)

    val_data = data.batches(splits["val"], source_vocabulary, target_vocabulary, config)
    padding_id = target_vocabulary.pad_id

    with strategy.scope(), precision_policy(mixed_precision):
        model = build_translator(config, source_size, target_size, padding_id)
        if init_from:  # before compiling (no optimizer state to load); a backup is resumed over
            start = restore_weights(model, init_from, "best")
            write_run_info(workdir, initialized_from=os.path.abspath(init_from))
            print(f"starting from {os.path.join(init_from, start)}")
        schedule = TransformerSchedule(config.d_model, config.warmup_steps,
                                       config.learning_rate_scale)
        model.compile(
            optimizer=Adam(schedule, beta_1=0.9, beta_2=0.98, epsilon=1e-9),
            loss=MaskedCrossEntropy(config.label_smoothing, padding_id),
            metrics=[MaskedAccuracy(padding_id)],
            jit_compile=jit_compile,
        )
    verbose = progress_verbosity(verbose)
    callbacks = standard_callbacks(workdir, backup_dir=backup_dir)
    with bad_examples.bad_data_errors():
        history = distributed_fit.fit(
            model, strategy, train_data, epochs=config.epochs, steps_per_epoch=steps,
            validation_data=val_data,
            callbacks=callbacks, verbose=verbose,
            backup_dir=backup_dir)
    use_export_weights(model, workdir, config.export_weights)
    quantize_for_export(model, config.quantize, strategy)

    server = serving.TranslationServer(model, config, workdir)
    split = "test" if splits["test"].count else "val"
    with bad_examples.bad_data_errors():
        pairs = data.read_pairs(splits[split], config)
    hypotheses = evaluate.translate_batches(server.serve, [s for s, _ in pairs])
    scores = evaluate.score(hypotheses, [t for _, t in pairs])
    print(f"{split}: {evaluate.describe(scores, data_dir is None)} ({len(pairs)} sentences, "
          f"beam {config.beam_size})")
    export_path = training_run.export_trained(serving.export, server, export_dir,
                                                 backup_dir)
    print(f"exported to {export_path}")
    for (source, reference), hypothesis in list(zip(pairs, hypotheses))[:examples]:
        print(f"  {source}\n    -> {hypothesis}\n    (reference: {reference})")
    return {"history": history.history, "scores": scores, "export_path": export_path,
            "server": server, "model": model}
