import keras

from tfformer import masks as mask_lib
from tfformer.layers.dropout import Dropout
from tfformer.layers.feed_forward import FeedForward
from tfformer.layers.layer_normalization import LayerNormalization
from tfformer.layers.multi_head_attention import MultiHeadAttention
from tfformer.layers.transformer_block_config import (
    check_activation_dropout,
    check_block_args,
    check_input_width,
)


@keras.saving.register_keras_serializable(package="tfformer")
class TransformerDecoderBlock(keras.layers.Layer):
    """One decoder layer: causal self-attention, cross-attention, feed-forward.

    Self-attention is always causal (optionally also windowed); cross-attention
    over the encoder memory is masked by the memory's padding. Post-LN by
    default, pre-LN with `norm_first=True`. With `cross_attention=False` it
    is a decoder-only (GPT-style) block.

    Args:
        d_model, num_heads, intermediate_dim, dropout, activation, norm_first,
        layer_norm_epsilon, activation_dropout: as in `TransformerEncoderBlock`.
        cross_attention: bool, default True.
        window: `(left, right)` or None for the self-attention.
        use_rotary: bool, rotary positions in the self-attention.

    Call arguments:
        targets: (B, T, D).
        memory: (B, S, D) encoder outputs (needed if `cross_attention`).
        targets_mask: (B, T) bool; defaults to the targets' Keras mask.
        memory_mask: (B, S) bool; defaults to the memory's Keras mask.
        self_attention_mask: (B, T, T_cache) bool, ANDed with causal.
        cross_attention_mask: (B, T, S) bool.
        self_attention_cache: (B, 2, T_max, N, H), or a (keys, values)
            pair of (B, N, T_max, H), or a `GrowingCache` (see
            `MultiHeadAttention`): decode step by step, writing at (or, for a
            growing cache, appending after) `cache_update_index`.
        cross_attention_cache: (B, 2, S, N, H) or a (keys, values) pair, from
            `precompute_cross_attention_cache(memory)`; `memory` may then
            be None.
        cache_update_index: int or scalar int tensor.
        training, return_attention_scores: bool.

    Returns:
        `outputs` (B, T, D), followed by a dict
        `{"self": (B, N, T, T'), "cross": (B, N, T, S)}` when
        `return_attention_scores`, followed by the updated self-attention
        cache when `self_attention_cache` is given.

    Example:

    >>> import numpy as np
    >>> block = TransformerDecoderBlock(d_model=16, num_heads=4, intermediate_dim=32)
    >>> tuple(block(np.zeros((2, 5, 16), "float32"), np.zeros((2, 7, 16), "float32")).shape)
    (2, 5, 16)
    """

    def __init__(
        self,
        d_model,
        num_heads,
        intermediate_dim,
        dropout=0.1,
        activation="relu",
        norm_first=False,
        layer_norm_epsilon=1e-6,
        cross_attention=True,
        window=None,
        use_rotary=False,
        activation_dropout=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_block_args(d_model, num_heads, intermediate_dim, dropout)
        check_activation_dropout(activation_dropout)
        self.activation_dropout = activation_dropout
        self.d_model = d_model
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.activation = activation
        self.norm_first = norm_first
        self.layer_norm_epsilon = layer_norm_epsilon
        self.cross_attention = cross_attention
        self.window = mask_lib.validate_window(window)
        self.use_rotary = use_rotary
        policy = self.dtype_policy
        head_dim = d_model // num_heads

        def norm(name):
            return LayerNormalization(
                epsilon=layer_norm_epsilon, dtype=policy, name=name)

        self._self_attention = MultiHeadAttention(
            num_heads, head_dim, dropout=dropout, window=self.window, use_rotary=use_rotary,
            dtype=policy, name="self_attention")
        self._self_attention_norm = norm("self_attention_norm")
        if cross_attention:
            self._cross_attention = MultiHeadAttention(
                num_heads, head_dim, dropout=dropout, dtype=policy, name="cross_attention")
            self._cross_attention_norm = norm("cross_attention_norm")
        self._feed_forward = FeedForward(
            intermediate_dim, activation,
            dropout=dropout if activation_dropout is None else activation_dropout,
            dtype=policy, name="feed_forward")
        self._feed_forward_norm = norm("feed_forward_norm")
        self._dropout = Dropout(dropout, dtype=policy)
        self.supports_masking = True

    def build(self, targets_shape, memory_shape=None):
        check_input_width(self, targets_shape)
        self._self_attention.build(targets_shape, targets_shape)
        self._self_attention_norm.build(targets_shape)
        if self.cross_attention:
            memory_shape = memory_shape or (targets_shape[0], None, self.d_model)
            self._cross_attention.build(targets_shape, memory_shape)
            self._cross_attention_norm.build(targets_shape)
        self._feed_forward.build(targets_shape)
        self._feed_forward_norm.build(targets_shape)
        self.built = True

    def precompute_cross_attention_cache(self, memory, stacked=True):
        """(B, 2, S, N, H) keys and values of the memory, computed once per
        sequence for cached decoding; with `stacked=False` a (keys, values)
        pair of (B, N, S, H)."""
        return self._cross_attention.precompute_cache(memory, stacked=stacked)

    def _sublayer(self, x, norm, fn, training):
        """Residual around `fn`, with the norm before (pre-LN) or after (post-LN)."""
        out = fn(norm(x) if self.norm_first else x)
        extra = ()
        if isinstance(out, tuple):
            out, extra = out[0], out[1:]
        x = x + self._dropout(out, training=training)
        return (x if self.norm_first else norm(x)), extra

    def call(
        self,
        targets,
        memory=None,
        targets_mask=None,
        memory_mask=None,
        self_attention_mask=None,
        cross_attention_mask=None,
        self_attention_cache=None,
        cross_attention_cache=None,
        cache_update_index=None,
        training=None,
        return_attention_scores=False,
    ):
        if targets_mask is None:
            targets_mask = mask_lib.keras_mask(targets)
        if memory is not None and memory_mask is None:
            memory_mask = mask_lib.keras_mask(memory)
        if self.cross_attention and memory is None and cross_attention_cache is None:
            raise ValueError(f"{self.name} has cross-attention: pass `memory` or a cross_attention_cache")
        decoding = self_attention_cache is not None
        scores = {}

        def self_attend(x):
            return self._self_attention(
                x, x, query_mask=targets_mask, value_mask=targets_mask,
                attention_mask=self_attention_mask, use_causal_mask=True,
                return_attention_scores=True, training=training,
                cache=self_attention_cache, cache_update_index=cache_update_index,
            )

        x, extra = self._sublayer(targets, self._self_attention_norm, self_attend, training)
        scores["self"] = extra[0]
        new_cache = extra[1] if decoding else None

        if self.cross_attention:
            def cross_attend(x):
                value = memory if memory is not None else x
                return self._cross_attention(
                    x, value, query_mask=targets_mask,
                    value_mask=memory_mask,
                    attention_mask=cross_attention_mask, return_attention_scores=True,
                    training=training, cache=cross_attention_cache,
                )

            x, extra = self._sublayer(x, self._cross_attention_norm, cross_attend, training)
            scores["cross"] = extra[0]

        x, _ = self._sublayer(
            x, self._feed_forward_norm, lambda h: self._feed_forward(h, training=training), training
        )
        results = (x,)
        if return_attention_scores:
            results += (scores,)
        if decoding:
            results += (new_cache,)
        return results[0] if len(results) == 1 else results

    def compute_mask(self, targets, previous_mask=None):
        return previous_mask

    def compute_output_shape(self, targets_shape, memory_shape=None):
        return targets_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            d_model=self.d_model, num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim, dropout=self.dropout,
            activation=self.activation, norm_first=self.norm_first,
            layer_norm_epsilon=self.layer_norm_epsilon, cross_attention=self.cross_attention,
            window=self.window, use_rotary=self.use_rotary,
            activation_dropout=self.activation_dropout,
        )
        return config
