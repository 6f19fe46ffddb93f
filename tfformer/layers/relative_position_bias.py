import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfformer")
class RelativePositionBias(keras.layers.Layer):
    """T5-style bucketed relative position bias (Raffel et al., 2020).

    Relative distances j - i are mapped to `num_buckets` buckets: exact for
    small distances, logarithmic up to `max_distance`, then clipped. Each
    bucket has a learned bias per head. Pass the output to
    `MultiHeadAttention(...)(..., attention_bias=bias)`.

    Args:
        num_heads: int, N.
        num_buckets: int, default 32.
        max_distance: int, default 128.
        bidirectional: bool, default True. False for causal attention, where
            keys to the right share one bucket.
        initializer: default "zeros": no position preference at the start.

    Call arguments:
        query: (B, T, ...) tensor; only its length is used.
        key: (B, S, ...) tensor; defaults to `query`.
        query_offset: int or scalar tensor, default 0. Absolute position of
            the first query (for cached decoding).

    Returns:
        (1, N, T, S) bias in the compute dtype.

    Example:

    >>> import numpy as np
    >>> bias = RelativePositionBias(num_heads=4)(np.zeros((2, 5, 8)))
    >>> tuple(bias.shape)
    (1, 4, 5, 5)
    """

    def __init__(
        self,
        num_heads,
        num_buckets=32,
        max_distance=128,
        bidirectional=True,
        initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("num_heads", num_heads), ("num_buckets", num_buckets),
                            ("max_distance", max_distance)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {name}={value!r}")
        exact = num_buckets // 2 if bidirectional else num_buckets
        if exact < 2 or max_distance <= exact // 2:
            raise ValueError(
                f"num_buckets={num_buckets} and max_distance={max_distance} leave no room for "
                "logarithmic buckets; use more buckets or a longer max_distance"
            )
        self.num_heads = num_heads
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.bidirectional = bidirectional
        self.initializer = keras.initializers.get(initializer)

    def build(self, query_shape=None, key_shape=None):
        self.bias_table = self.add_weight(
            name="bias", shape=(self.num_buckets, self.num_heads), initializer=self.initializer
        )
        self.built = True

    def bucket(self, relative_position):
        """Bucket ids (int32) of relative positions j - i."""
        num_buckets = self.num_buckets
        buckets = ops.zeros_like(relative_position)
        distance = -relative_position  # positive when the key is to the left
        if self.bidirectional:
            num_buckets //= 2
            buckets = buckets + ops.cast(distance < 0, "int32") * num_buckets
            distance = ops.abs(distance)
        else:
            distance = ops.maximum(distance, 0)
        max_exact = num_buckets // 2
        is_small = distance < max_exact
        scaled = ops.log(ops.maximum(ops.cast(distance, "float32"), 1.0) / max_exact) / math.log(
            self.max_distance / max_exact
        )
        large = max_exact + ops.cast(scaled * (num_buckets - max_exact), "int32")
        large = ops.minimum(large, num_buckets - 1)
        return buckets + ops.where(is_small, distance, large)

    def call(self, query, key=None, query_offset=0):
        key = query if key is None else key
        query_length, key_length = ops.shape(query)[1], ops.shape(key)[1]
        query_positions = ops.arange(query_length, dtype="int32") + ops.cast(query_offset, "int32")
        key_positions = ops.arange(key_length, dtype="int32")
        relative = key_positions[None, :] - query_positions[:, None]  # (T, S)
        bias = ops.take(self.bias_table, self.bucket(relative), axis=0)  # (T, S, N)
        bias = ops.transpose(bias, (2, 0, 1))[None]  # (1, N, T, S)
        return ops.cast(bias, self.compute_dtype)

    def compute_output_shape(self, query_shape, key_shape=None):
        key_shape = query_shape if key_shape is None else key_shape
        return (1, self.num_heads, query_shape[1], key_shape[1])

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            num_buckets=self.num_buckets,
            max_distance=self.max_distance,
            bidirectional=self.bidirectional,
            initializer=keras.initializers.serialize(self.initializer),
        )
        return config
