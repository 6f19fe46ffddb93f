"""Translation config and its presets (sizes are data)."""

import dataclasses
import typing

from applications.common.config import above, at_least, check_config, fraction, one_of
from applications.common.quantization import MODES as QUANTIZATION_MODES


@dataclasses.dataclass(frozen=True)
class TranslationConfig:
    # Data
    source_language: str = "en"  # suffix of the source files in --data (train.en)
    target_language: str = "de"  # suffix of the target files in --data (train.de)
    builtin_examples: int = 20000
    max_source_length: int = 64  # subword tokens, EOS included; longer inputs are truncated
    max_target_length: int = 64  # longer training pairs are dropped (and counted)
    # Tokenization (SentencePiece, applied in-graph with tf-text)
    vocabulary_size: int = 8000  # SentencePiece subwords
    shared_vocabulary: bool = True  # one tokenizer and embedding for both languages
    tokenizer_model_type: str = "unigram"  # SentencePiece model: unigram, bpe, char or word
    tokenizer_sample: int = 1_000_000  # each SentencePiece model learns from at most this
    # many sentences (a shared one: both sides of half as many pairs), evenly spread across
    # the training data
    # "sentencepiece" (trained on the data by `train`) or "marian" (a Marian checkpoint's
    # spm models and vocab.json, written by `tfformer import`); see vocabularies.py
    tokenizer: str = "sentencepiece"
    # Model
    num_layers: int = 6
    d_model: int = 512
    num_heads: int = 8
    intermediate_dim: int = 2048
    dropout: float = 0.1
    activation_dropout: float | None = None  # inside the feed-forward layers; None: dropout
    norm_first: bool = False  # pre-LN (true) or the paper's post-LN
    tie_embeddings: bool = True  # the output projection reuses the target embedding
    activation: str = "relu"  # the feed-forward activation (Marian: silu, i.e. swish)
    layer_norm_epsilon: float = 1e-6  # (Marian: 1e-5)
    position: str = "sinusoidal"  # sinusoidal (interleaved) or sinusoidal_halves (Marian)
    logits_bias: bool = False  # a fixed (V,) bias on the logits (Marian's final_logits_bias)
    # Training
    batch_size: int = 64
    epochs: int = 10
    steps_per_epoch: int | None = None
    label_smoothing: float = 0.1
    warmup_steps: int = 4000  # the paper's learning-rate warm-up steps
    learning_rate_scale: float = 1.0  # multiplies the paper's schedule
    shuffle_buffer: int = 20000  # pairs shuffled together: text is read in blocks this big
    max_bad_share: float = 0.001  # more bad lines than this share of the data stops the run
    seed: int = 0
    # Which weights are evaluated and exported: "best" (the epoch with the best validation
    # score, as Keras' restore_best_weights) or "last" (those training ended with).
    export_weights: str = "best"
    # Post-training weight quantization before evaluation and export: "none", "int8", "int4".
    quantize: str = "none"
    # Decoding
    beam_size: int = 4
    length_penalty: float = 0.6  # GNMT length-penalty exponent of beam scores
    max_decode_ratio: float = 1.5  # max target tokens = ratio * source tokens + extra
    max_decode_extra: int = 10  # see max_decode_ratio
    translate_empty: bool = False  # decode an empty input too (as Marian); else it gives ""

    LIMITS: typing.ClassVar = {
        "export_weights": one_of("best", "last"), "quantize": one_of(*QUANTIZATION_MODES),
        "builtin_examples": at_least(100), "max_source_length": at_least(2),
        "max_target_length": at_least(2), "vocabulary_size": at_least(16),
        "tokenizer_model_type": one_of("unigram", "bpe", "char", "word"),
        "tokenizer_sample": at_least(1),
        "tokenizer": one_of("sentencepiece", "marian"),
        "activation": one_of("relu", "gelu", "silu"), "activation_dropout": fraction(),
        "layer_norm_epsilon": above(0), "position": one_of("sinusoidal", "sinusoidal_halves"),
        "num_layers": at_least(1), "d_model": at_least(1), "num_heads": at_least(1),
        "intermediate_dim": at_least(1), "dropout": fraction(), "batch_size": at_least(1),
        "epochs": at_least(1), "steps_per_epoch": at_least(1), "label_smoothing": fraction(),
        "warmup_steps": at_least(0), "learning_rate_scale": above(0),
        "shuffle_buffer": at_least(1), "max_bad_share": fraction(), "beam_size": at_least(1), "length_penalty": at_least(0),
        "max_decode_ratio": above(0), "max_decode_extra": at_least(0),
    }

    def __post_init__(self):
        check_config(self)


# The fields a run's weights and tokenizer fix: `train --init-from RUN` takes them from RUN.
ARCHITECTURE = ("tokenizer", "vocabulary_size", "shared_vocabulary", "tokenizer_model_type",
                "num_layers", "d_model", "num_heads", "intermediate_dim", "norm_first",
                "tie_embeddings", "activation", "layer_norm_epsilon", "position", "logits_bias")

PRESETS = {
    "tiny": dict(
        builtin_examples=20000, vocabulary_size=400, num_layers=2, d_model=128, num_heads=4,
        intermediate_dim=256, dropout=0.1, batch_size=64, epochs=6, steps_per_epoch=250,
        warmup_steps=800, learning_rate_scale=1.0, max_source_length=40, max_target_length=40,
        beam_size=4,
    ),
    # Multi30k recipe (benchmarks/translation_multi30k.py): pre-LN trains faster than the
    # paper's post-LN at this size; 37.5 val sacreBLEU after 9 epochs.
    "small": dict(
        vocabulary_size=8000, num_layers=3, d_model=256, num_heads=4, intermediate_dim=1024,
        dropout=0.1, norm_first=True, batch_size=128, epochs=10, warmup_steps=1000,
        learning_rate_scale=1.0, max_source_length=64, max_target_length=64,
    ),
    "base": dict(
        vocabulary_size=32000, num_layers=6, d_model=512, num_heads=8, intermediate_dim=2048,
        dropout=0.1, batch_size=128, epochs=20, warmup_steps=4000,
        max_source_length=128, max_target_length=128,
    ),
}
