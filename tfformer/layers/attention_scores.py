"""Attention score functions: the one hook `MultiHeadAttention` scores through.

A score layer maps projected queries (B, T, N, H) and keys (B, S, N, H) to
logits (B, N, T, S); `heads_first` and `blocks` take the layouts of a KV cache
and of windowed attention, and by default lay them out as `call` takes them. `MultiHeadAttention(score=name)` looks the name up in
`SCORES`, so `get_config` stays JSON; a new score is a subclass of
`AttentionScore` registered in that table with `register_score`.
"""

import math

import keras
import tensorflow as tf
from keras import ops


class AttentionScore(keras.layers.Layer):
    """Base score layer. Subclasses implement `call(query, key)`.

    Args:
        num_heads: N.
        key_dim: H, the width of each projected query and key head.
    """

    def __init__(self, num_heads, key_dim, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim

    def build(self, query_shape, key_shape):
        self.built = True

    def call(self, query, key):
        raise NotImplementedError

    def heads_first(self, query, key):
        """Logits for keys laid out (B, N, S, H), as a per-layer KV cache stores
        them. This default transposes the keys; dot-product scores override it
        to read them as they are."""
        return self(query, ops.transpose(key, (0, 2, 1, 3)))

    def blocks(self, query, key):
        """Logits for heads-first blocks, as windowed attention cuts them: query
        (B, N, n, W, H) and key (B, N, n, S, H) -> (B, N, n, W, S). This default lays
        them out as `call` takes them; dot-product scores read them as they are."""
        batch, heads, count = ops.shape(query)[0], query.shape[1], ops.shape(query)[2]

        def blocks_first(x):  # (B, N, n, L, H) -> (B * n, L, N, H)
            x = ops.transpose(x, (0, 2, 3, 1, 4))
            return ops.reshape(x, (-1, x.shape[2], heads, x.shape[4]))

        logits = self(blocks_first(query), blocks_first(key))  # (B * n, N, W, S)
        logits = ops.reshape(logits, (batch, count, heads, *logits.shape[2:]))
        return ops.transpose(logits, (0, 2, 1, 3, 4))

    def get_config(self):
        config = super().get_config()
        config.update(num_heads=self.num_heads, key_dim=self.key_dim)
        return config


class DotScore(AttentionScore):
    """q . k (Luong's "dot")."""

    def call(self, query, key):
        return ops.einsum("btnh,bsnh->bnts", query, key)  # (B, N, T, S)

    def heads_first(self, query, key):
        return ops.einsum("btnh,bnsh->bnts", query, key)

    def blocks(self, query, key):
        # A batch matmul: TensorFlow runs this 5-D einsum as a oneDNN einsum, 2x slower.
        return tf.linalg.matmul(query, key, transpose_b=True)


class ScaledDotScore(DotScore):
    """q . k / sqrt(H) (Vaswani et al.); the default."""

    # Scale the query first, as keras.layers.MultiHeadAttention does, so
    # outputs match it to rounding.
    def call(self, query, key):
        return super().call(self._scale(query), key)

    def heads_first(self, query, key):
        return super().heads_first(self._scale(query), key)

    def blocks(self, query, key):
        return super().blocks(self._scale(query), key)

    def _scale(self, query):
        return ops.multiply(query, ops.cast(1.0 / math.sqrt(self.key_dim), query.dtype))


class GeneralScore(AttentionScore):
    """Bilinear q W k / sqrt(H) (Luong's "general"), one W (H, H) per head.

    Scaled by 1/sqrt(H) like the default so it trains at the same learning
    rates; W starts at the identity, so an untrained layer equals scaled-dot.
    """

    def build(self, query_shape, key_shape):
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.num_heads, self.key_dim, self.key_dim),
            initializer=lambda shape, dtype=None: ops.broadcast_to(
                ops.eye(shape[-1], dtype=dtype), shape
            ),
        )
        self.built = True

    def call(self, query, key):
        query = ops.einsum("btnh,nhg->btng", query, ops.cast(self.kernel, query.dtype))
        query = ops.multiply(query, ops.cast(1.0 / math.sqrt(self.key_dim), query.dtype))
        return ops.einsum("btng,bsng->bnts", query, key)  # (B, N, T, S)


class AdditiveScore(AttentionScore):
    """v . tanh(W_q q + W_k k) (Bahdanau et al.), hidden width H per head.

    Memory grows as B*N*T*S*H: meant for short sequences and study.
    """

    def build(self, query_shape, key_shape):
        shape = (self.num_heads, self.key_dim, self.key_dim)
        self.query_kernel = self.add_weight(name="query_kernel", shape=shape, initializer="glorot_uniform")
        self.key_kernel = self.add_weight(name="key_kernel", shape=shape, initializer="glorot_uniform")
        self.energy = self.add_weight(
            name="energy", shape=(self.num_heads, self.key_dim), initializer="glorot_uniform"
        )
        self.built = True

    def call(self, query, key):
        dtype = query.dtype
        q = ops.einsum("btnh,nha->bnta", query, ops.cast(self.query_kernel, dtype))  # (B, N, T, A)
        k = ops.einsum("bsnh,nha->bnsa", key, ops.cast(self.key_kernel, dtype))  # (B, N, S, A)
        hidden = ops.tanh(q[:, :, :, None, :] + k[:, :, None, :, :])  # (B, N, T, S, A)
        return ops.einsum("bntsa,na->bnts", hidden, ops.cast(self.energy, dtype))  # (B, N, T, S)


SCORES = {
    "scaled_dot": ScaledDotScore,
    "dot": DotScore,
    "general": GeneralScore,
    "additive": AdditiveScore,
}


def register_score(name, score_class):
    """Makes `score=name` available to every `MultiHeadAttention`."""
    if not issubclass(score_class, AttentionScore):
        raise TypeError(f"{score_class!r} is not a subclass of AttentionScore")
    SCORES[name] = score_class


def get_score_class(name):
    if name not in SCORES:
        raise ValueError(f"Unknown attention score {name!r}; expected one of {sorted(SCORES)}")
    return SCORES[name]
