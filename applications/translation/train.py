"""Training the translation model: data, tokenizers, fit, evaluation, export."""

import json
import math
import os
import warnings

import keras
from keras import ops

from applications.common import distributed_fit, training_run
from applications.common.callbacks import progress_verbosity, standard_callbacks, use_export_weights
from applications.common.config import to_json
from applications.common.precision import precision_policy
from applications.common.quantization import quantize_for_export
from applications.common.replica_metrics import global_mean
from applications.translation import data, evaluate, serving
from applications.translation.model import build_translator
from tfformer.losses import sparse_categorical_crossentropy
from tfformer.optimizers import Adam
from tfformer.schedules import TransformerSchedule


@keras.saving.register_keras_serializable(package="tfformer_applications")
class MaskedCrossEntropy(keras.losses.Loss):
    """Label-smoothed cross-entropy averaged over the global batch's non-padding tokens
    (label 0 = pad).

    Under a strategy each replica's gradient is that of its share (its token
    losses over the token count of all replicas), so training is the same on
    one device or many; see `global_mean`. (Keras leaves a scalar loss
    unscaled and sums the replicas' gradients.)"""

    def __init__(self, label_smoothing=0.1, name="masked_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        losses = sparse_categorical_crossentropy(y_true, y_pred, self.label_smoothing)  # (B, T)
        mask = ops.cast(ops.not_equal(y_true, 0), losses.dtype)
        return global_mean(ops.sum(losses * mask), ops.sum(mask), ops.shape(y_true)[0])

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="tfformer_applications")
class MaskedAccuracy(keras.metrics.Metric):
    """Next-token accuracy over non-padding labels, weighted by token count."""

    def __init__(self, name="masked_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable((), initializer="zeros", name="correct")
        self.total = self.add_variable((), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        mask = ops.not_equal(y_true, 0)
        hits = ops.logical_and(ops.equal(y_true, ops.cast(ops.argmax(y_pred, -1), "int32")), mask)
        self.correct.assign_add(ops.sum(ops.cast(hits, "float32")))
        self.total.assign_add(ops.sum(ops.cast(mask, "float32")))

    def result(self):
        return self.correct / ops.maximum(self.total, 1.0)


def tokenizer_paths(workdir, shared):
    directory = os.path.join(workdir, "tokenizer")
    names = ("spm.model", "spm.model") if shared else ("source.spm.model", "target.spm.model")
    return directory, [os.path.join(directory, name) for name in names]


def _tokenizers(workdir, config, pairs, same_tokenizer_config):
    """SentencePiece protos: reused from `workdir` when the run resumes with the same
    tokenizer settings (the checkpoint's embeddings index them), else trained and saved."""
    directory, paths = tokenizer_paths(workdir, config.shared_vocabulary)
    if same_tokenizer_config and all(os.path.exists(path) for path in paths):
        protos = []
        for path in paths:
            with open(path, "rb") as handle:
                protos.append(handle.read())
        print(f"reusing the tokenizer in {directory}")
        return directory, protos[0], protos[1]
    source_proto, target_proto = data.train_tokenizers(pairs, config)
    os.makedirs(directory, exist_ok=True)
    for path, proto in zip(paths, (source_proto, target_proto)):
        with open(path, "wb") as handle:
            handle.write(proto)
    return directory, source_proto, target_proto


# The fields a trained tokenizer depends on; others (epochs, model size) may change
# between a run and its resumption.
_TOKENIZER_FIELDS = ("source_language", "target_language", "builtin_examples", "seed",
                     "vocabulary_size", "shared_vocabulary", "tokenizer_model_type")


def _same_tokenizer_config(workdir, config):
    """Whether the run in `workdir` (its config.json) trained its tokenizer as `config` would."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return False
    with open(path) as handle:
        previous = json.load(handle)
    return all(previous.get(field) == getattr(config, field) for field in _TOKENIZER_FIELDS)


def train(config, data_dir=None, workdir="runs/translation",
          export_dir="saved_models/translation", strategy="auto", verbose="auto",
          mixed_precision="none", jit_compile=False, examples=5, resume="auto"):
    """Trains, evaluates on the test split (val if there is none) and exports.

    `mixed_precision` is "none", "bf16" or "fp16" (with loss scaling);
    `jit_compile` compiles the training step with XLA.

    Returns a dict with the Keras history, the scores, the export path and
    the server module.
    """
    return training_run.run_training(
        _train, config, data_dir, workdir, export_dir, strategy, resume=resume, verbose=verbose,
        mixed_precision=mixed_precision, jit_compile=jit_compile, examples=examples)


def _train(config, data_dir, workdir, export_dir, strategy, backup_dir, verbose,
           mixed_precision, jit_compile, examples):
    keras.utils.set_random_seed(config.seed)
    # Length-bucketed validation data has no known size, and Keras warns at its
    # (expected) end on every epoch.
    warnings.filterwarnings("ignore", message="Your input ran out of data")
    corpus = data.load_corpus(data_dir, config)
    print("data: " + ", ".join(f"{split} {len(pairs)} pairs" for split, pairs in corpus.items()))
    same_tokenizer_config = _same_tokenizer_config(workdir, config)
    os.makedirs(workdir, exist_ok=True)  # only once the data loaded: a run's config stays
    with open(os.path.join(workdir, "config.json"), "w") as handle:
        handle.write(to_json(config))
    tokenizer_dir, source_proto, target_proto = _tokenizers(
        workdir, config, corpus["train"], same_tokenizer_config)
    source_tokenizer, target_tokenizer = data.tokenizer(source_proto), data.tokenizer(target_proto)
    source_size, target_size = data.vocabulary_size(source_proto), data.vocabulary_size(target_proto)
    print(f"vocabulary: {source_size} subwords shared by both languages"
          if config.shared_vocabulary else
          f"vocabulary: {source_size} source and {target_size} target subwords")
    train_data = data.make_dataset(corpus["train"], source_tokenizer, target_tokenizer, config,
                                   training=True, name="train")
    val_data = data.make_dataset(corpus["val"], source_tokenizer, target_tokenizer, config,
                                 training=False, name="val")

    with strategy.scope(), precision_policy(mixed_precision):
        model = build_translator(config, source_size, target_size)
        schedule = TransformerSchedule(config.d_model, config.warmup_steps,
                                       config.learning_rate_scale)
        model.compile(
            optimizer=Adam(schedule, beta_1=0.9, beta_2=0.98, epsilon=1e-9),
            loss=MaskedCrossEntropy(config.label_smoothing),
            metrics=[MaskedAccuracy()],
            jit_compile=jit_compile,
        )
    steps = config.steps_per_epoch or math.ceil(len(corpus["train"]) / config.batch_size)
    verbose = progress_verbosity(verbose)
    callbacks = standard_callbacks(workdir, backup_dir=backup_dir)
    history = distributed_fit.fit(
        model, strategy, train_data, epochs=config.epochs, steps_per_epoch=steps,
        validation_data=val_data,
        callbacks=callbacks, verbose=verbose,
        backup_dir=backup_dir)
    use_export_weights(model, workdir, config.export_weights)
    quantize_for_export(model, config.quantize, strategy)

    server = serving.TranslationServer(model, source_proto, target_proto, config, tokenizer_dir)
    split = "test" if corpus["test"] else "val"
    pairs = corpus[split]
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
