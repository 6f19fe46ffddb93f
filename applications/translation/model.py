"""The Transformer translation model, built only from tfformer layers."""

import keras
import tensorflow as tf
from keras import ops

from tfformer import layers


@keras.saving.register_keras_serializable(package="tfformer_applications")
class Translator(keras.Model):
    """Encoder-decoder Transformer (Vaswani et al., 2017) with a cached decoder.

    Args:
        source_vocabulary_size, target_vocabulary_size: ints.
        num_layers, d_model, num_heads, intermediate_dim, dropout, norm_first:
            the encoder's and decoder's shape.
        tie_embeddings: share the target embedding with the output
            projection (and with the source embedding when the vocabularies
            are one).
        shared_vocabulary: source and target use one embedding table.
        activation_dropout: dropout inside the feed-forward layers; None =
            `dropout`.
        activation: the feed-forward activation, default "relu" (Marian: "swish").
        layer_norm_epsilon: default 1e-6 (Marian: 1e-5).
        position: "sinusoidal" (default) or "sinusoidal_halves" (Marian's layout).
        padding_id: the id that pads sources and targets, default 0 (Marian: its
            last id; its 0 is `</s>`).
        logits_bias: add a (V,) bias to the logits, default False (Marian's
            `final_logits_bias`); a non-trainable weight, as Marian's is a buffer.

    Call arguments:
        inputs: {"source_ids": (B, S) int, "target_ids": (B, T) int}, padded with
            `padding_id`.

    Returns:
        logits (B, T, V_target) float32.
    """

    def __init__(self, source_vocabulary_size, target_vocabulary_size, num_layers=6,
                 d_model=512, num_heads=8, intermediate_dim=2048, dropout=0.1,
                 norm_first=False, tie_embeddings=True, shared_vocabulary=True,
                 activation_dropout=None, activation="relu", layer_norm_epsilon=1e-6,
                 position="sinusoidal", padding_id=0, logits_bias=False, **kwargs):
        super().__init__(**kwargs)
        if shared_vocabulary and source_vocabulary_size != target_vocabulary_size:
            raise ValueError(
                f"shared_vocabulary needs equal sizes, got {source_vocabulary_size} and "
                f"{target_vocabulary_size}")
        self.source_vocabulary_size = source_vocabulary_size
        self.target_vocabulary_size = target_vocabulary_size
        self.num_layers = num_layers
        self.d_model = d_model
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.norm_first = norm_first
        self.tie_embeddings = tie_embeddings
        self.shared_vocabulary = shared_vocabulary
        self.activation_dropout = activation_dropout
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.position = position
        self.padding_id = padding_id
        self.logits_bias = logits_bias
        self.target_embedding = layers.TokenAndPositionEmbedding(
            target_vocabulary_size, d_model, position=position, name="target_embedding")
        self.source_embedding = (
            self.target_embedding if shared_vocabulary else layers.TokenAndPositionEmbedding(
                source_vocabulary_size, d_model, position=position, name="source_embedding"))
        self.embedding_dropout = layers.Dropout(dropout)
        stack = dict(d_model=d_model, num_heads=num_heads, intermediate_dim=intermediate_dim,
                     dropout=dropout, norm_first=norm_first, activation_dropout=activation_dropout,
                     activation=activation, layer_norm_epsilon=layer_norm_epsilon)
        self.encoder = layers.TransformerEncoder(num_layers, **stack, name="encoder")
        self.decoder = layers.TransformerDecoder(num_layers, **stack, name="decoder")
        self.output_projection = None if tie_embeddings else keras.layers.Dense(
            target_vocabulary_size, name="output_projection")

    def build(self, input_shape=None):
        self.target_embedding.build((None, None))
        self.source_embedding.build((None, None))
        self.encoder.build((None, None, self.d_model))
        self.decoder.build((None, None, self.d_model), (None, None, self.d_model))
        if self.output_projection is not None:
            self.output_projection.build((None, None, self.d_model))
        if self.logits_bias:
            self.output_bias = self.add_weight(
                shape=(self.target_vocabulary_size,), initializer="zeros", trainable=False,
                name="logits_bias")
        self.built = True

    def source_mask(self, source_ids):
        """(B, S) bool, True at real source tokens (not `padding_id`)."""
        return ops.not_equal(source_ids, self.padding_id)

    def encode(self, source_ids, training=False):
        """Memory (B, S, D) and source padding mask (B, S)."""
        source_mask = self.source_mask(source_ids)
        x = self.embedding_dropout(self.source_embedding(source_ids), training=training)
        return self.encoder(x, padding_mask=source_mask, training=training), source_mask

    def logits(self, x):
        """(B, T, D) decoder states -> (B, T, V) float32 logits."""
        if self.output_projection is not None:
            logits = ops.cast(self.output_projection(x), "float32")
        else:
            logits = ops.cast(self.target_embedding.reverse(x), "float32")
        if self.logits_bias:
            logits = logits + ops.cast(self.output_bias, "float32")
        return logits

    def call(self, inputs, training=False):
        memory, source_mask = self.encode(inputs["source_ids"], training)
        target_ids = inputs["target_ids"]
        x = self.embedding_dropout(self.target_embedding(target_ids), training=training)
        # Right-padded targets need only the decoder's causal mask: a real position never
        # sees a later pad. (A padding mask would also hide Marian's start token, its pad id.)
        x = self.decoder(x, memory, memory_mask=source_mask, training=training)
        return self.logits(x)

    # -- cached decoding: a state of batch-first tensors and a step function ----

    def initial_state(self, source_ids, max_length, record_attention=False, static_cache=False):
        """Decoding inputs for `tfformer.decoding`: `(state, shared)`.

        `shared` is what every step reads unchanged: the encoded source's
        cross-attention keys and values and its padding mask. Beam search
        passes it untiled, so each example's memory is read once for all of
        its hypotheses. `state` holds the self-attention cache, which grows
        by one position a step (`tfformer.kv_cache.GrowingCache`), the
        faster form in graph mode; `static_cache=True` preallocates it for
        max_length + 1 positions instead, which XLA (`jit_compile=True`)
        needs. With `record_attention`, the state also holds
        "cross_attention" (B, L, N, max_length + 1, S) float32, where every
        step writes the cross-attention weights its query used (row `index`
        predicts token `index + 1`)."""
        memory, source_mask = self.encode(source_ids)
        batch = tf.shape(source_ids)[0]
        shared = {
            "cross_cache": self.decoder.precompute_cross_attention_cache(memory, stacked=False),
            "source_mask": source_mask,
        }
        state = {"cache": self.decoder.initial_cache(
            batch, max_length + 1 if static_cache else None, dtype=memory.dtype, stacked=False)}
        if record_attention:
            state["cross_attention"] = tf.zeros(
                [batch, self.num_layers, self.num_heads, max_length + 1, tf.shape(source_ids)[1]])
        return state, shared

    def decode_step(self, token_ids, state, index, shared):
        """token_ids (B',) at position `index` -> logits (B', V) for the next one; B' is a
        multiple of the batch of `shared` (beam search's hypotheses)."""
        x = self.target_embedding(token_ids[:, None], start_index=index)  # (B', 1, D)
        x, scores, cache = self.decoder.step(
            x, state["cache"], index, memory_mask=shared["source_mask"],
            cross_attention_cache=shared["cross_cache"])
        state = {**state, "cache": cache}
        if "cross_attention" in state:
            weights = tf.stack([tf.cast(s["cross"][:, :, 0], tf.float32) for s in scores],
                               axis=1)  # (B', L, N, S)
            row = tf.one_hot(index, tf.shape(state["cross_attention"])[3])  # (T,)
            state["cross_attention"] += weights[:, :, :, None, :] * row[:, None]
        return self.logits(x)[:, 0], state

    def get_config(self):
        config = super().get_config()
        config.update(
            source_vocabulary_size=self.source_vocabulary_size,
            target_vocabulary_size=self.target_vocabulary_size, num_layers=self.num_layers,
            d_model=self.d_model, num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim, dropout=self.dropout,
            norm_first=self.norm_first, tie_embeddings=self.tie_embeddings,
            shared_vocabulary=self.shared_vocabulary, activation_dropout=self.activation_dropout,
            activation=self.activation, layer_norm_epsilon=self.layer_norm_epsilon,
            position=self.position, padding_id=self.padding_id, logits_bias=self.logits_bias,
        )
        return config


def build_translator(config, source_vocabulary_size, target_vocabulary_size, padding_id=0):
    """The Translator a `TranslationConfig` declares, built."""
    model = Translator(
        source_vocabulary_size, target_vocabulary_size, num_layers=config.num_layers,
        d_model=config.d_model, num_heads=config.num_heads,
        intermediate_dim=config.intermediate_dim, dropout=config.dropout,
        norm_first=config.norm_first, tie_embeddings=config.tie_embeddings,
        shared_vocabulary=config.shared_vocabulary,
        activation_dropout=config.activation_dropout, activation=config.activation,
        layer_norm_epsilon=config.layer_norm_epsilon, position=config.position,
        padding_id=padding_id, logits_bias=config.logits_bias, name="translator")
    model.build()
    return model
