"""A short end-to-end demo: a small encoder-decoder learns to reverse digit strings.

Stands in for the translation application until it lands. Everything is
generated with a seed; nothing is downloaded.
"""

import dataclasses

import keras
import numpy as np

from tfformer import layers

PAD, BOS, EOS = 0, 1, 2
FIRST_SYMBOL = 3


@dataclasses.dataclass
class DemoConfig:
    vocabulary_size: int = 13  # PAD, BOS, EOS and ten digits
    max_length: int = 12
    d_model: int = 64
    num_heads: int = 4
    intermediate_dim: int = 128
    num_layers: int = 2
    batch_size: int = 64
    epochs: int = 4
    steps_per_epoch: int = 60
    learning_rate: float = 1e-3
    seed: int = 0


def make_reversal_data(config, num_examples, seed):
    """Source digit strings of random length and their reversals, padded with 0.

    Returns `(source, target_in, target_out)`, int32 arrays of shape
    (num_examples, max_length [+ 1]).
    """
    rng = np.random.default_rng(seed)
    length = config.max_length
    source = np.zeros((num_examples, length), np.int32)
    target_in = np.zeros((num_examples, length + 1), np.int32)
    target_out = np.zeros((num_examples, length + 1), np.int32)
    for i in range(num_examples):
        n = rng.integers(3, length + 1)
        symbols = rng.integers(FIRST_SYMBOL, config.vocabulary_size, size=n)
        reversed_symbols = symbols[::-1]
        source[i, :n] = symbols
        target_in[i, 0] = BOS
        target_in[i, 1:n + 1] = reversed_symbols
        target_out[i, :n] = reversed_symbols
        target_out[i, n] = EOS
    return source, target_in, target_out


def build_model(config):
    """Encoder-decoder built only from tfformer layers; returns logits (B, T, V)."""
    source = keras.Input((None,), dtype="int32", name="source")
    target = keras.Input((None,), dtype="int32", name="target")
    common = dict(d_model=config.d_model, num_heads=config.num_heads,
                  intermediate_dim=config.intermediate_dim, dropout=0.0)
    embed = dict(vocabulary_size=config.vocabulary_size, d_model=config.d_model,
                 sequence_length=config.max_length + 1, mask_zero=True)
    memory = layers.TokenAndPositionEmbedding(**embed, name="source_embedding")(source)
    memory = layers.TransformerEncoder(config.num_layers, **common, name="encoder")(memory)
    x = layers.TokenAndPositionEmbedding(**embed, name="target_embedding")(target)
    x = layers.TransformerDecoder(config.num_layers, **common, name="decoder")(x, memory)
    logits = keras.layers.Dense(config.vocabulary_size, name="logits")(x)
    return keras.Model({"source": source, "target": target}, logits, name="reversal")


def train(config):
    """Trains the demo; returns per-epoch losses and the validation accuracy."""
    keras.utils.set_random_seed(config.seed)
    num_train = config.batch_size * config.steps_per_epoch
    source, target_in, target_out = make_reversal_data(config, num_train, config.seed)
    val_source, val_in, val_out = make_reversal_data(config, 512, config.seed + 1)
    model = build_model(config)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    history = model.fit(
        {"source": source, "target": target_in}, target_out,
        batch_size=config.batch_size, epochs=config.epochs,
        validation_data=({"source": val_source, "target": val_in}, val_out), verbose=2,
    )
    return {
        "losses": history.history["loss"],
        "val_accuracy": history.history["val_accuracy"][-1],
        "model": model,
    }
