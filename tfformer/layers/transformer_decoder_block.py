import keras

from tfformer import masks as mask_lib
from tfformer.layers.block_arguments import (
    check_activation_dropout,
    check_block_args,
    check_input_width,
)
from tfformer.layers.cached_decoder_layer import CachedDecoderLayer
from tfformer.layers.dropout import Dropout
from tfformer.layers.feed_forward import FeedForward
from tfformer.layers.layer_normalization import LayerNormalization
from tfformer.layers.multi_head_attention import MultiHeadAttention


@keras.saving.register_keras_serializable(package="tfformer")
class TransformerDecoderBlock(CachedDecoderLayer):
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
        training, return_attention_scores: bool.

    Returns:
        `outputs` (B, T, D), or with `return_attention_scores`
        `(outputs, {"self": (B, N, T, T), "cross": (B, N, T, S)})`.

    Decoding with a KV cache goes through `step(targets, cache,
    cache_update_index, ...)`, which returns `(outputs, scores, cache)`; the
    cache is any `tfformer.kv_cache` form: (B, 2, T_max, N, H), a (keys,
    values) pair of (B, N, T_max, H), or a `GrowingCache`.
    `precompute_cross_attention_cache(memory)` computes the cross-attention
    keys and values once per sequence.

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
        """Residual around `fn`, with the norm before (pre-LN) or after (post-LN).
        `fn` returns its output and what else it has (scores, a cache), passed on."""
        out, extra = fn(norm(x) if self.norm_first else x)
        x = x + self._dropout(out, training=training)
        return (x if self.norm_first else norm(x)), extra

    def _forward(self, targets, memory, targets_mask, memory_mask, self_attention_mask,
                 cross_attention_mask, training, cache=None, cross_attention_cache=None,
                 cache_update_index=None):
        """-> outputs (B, T, D), scores {"self", "cross"}, the updated cache (or None)."""
        if targets_mask is None:
            targets_mask = mask_lib.keras_mask(targets)
        if memory is not None and memory_mask is None:
            memory_mask = mask_lib.keras_mask(memory)
        if self.cross_attention and memory is None and cross_attention_cache is None:
            raise ValueError(f"{self.name} has cross-attention: pass `memory` or a "
                             "cross_attention_cache")
        scores = {}

        def self_attend(x):
            if cache is None:
                out, weights = self._self_attention(
                    x, x, query_mask=targets_mask, value_mask=targets_mask,
                    attention_mask=self_attention_mask, use_causal_mask=True,
                    return_attention_scores=True, training=training)
                return out, (weights, None)
            out, weights, new_cache = self._self_attention.step(
                x, cache, cache_update_index, query_mask=targets_mask,
                attention_mask=self_attention_mask, use_causal_mask=True, training=training)
            return out, (weights, new_cache)

        x, (scores["self"], new_cache) = self._sublayer(
            targets, self._self_attention_norm, self_attend, training)

        if self.cross_attention:
            def cross_attend(x):
                if cross_attention_cache is None:
                    return self._cross_attention(
                        x, memory, query_mask=targets_mask, value_mask=memory_mask,
                        attention_mask=cross_attention_mask, return_attention_scores=True,
                        training=training)
                out, weights, _ = self._cross_attention.step(
                    x, cross_attention_cache, query_mask=targets_mask, value_mask=memory_mask,
                    attention_mask=cross_attention_mask, training=training)
                return out, weights

            x, scores["cross"] = self._sublayer(
                x, self._cross_attention_norm, cross_attend, training)

        x, _ = self._sublayer(
            x, self._feed_forward_norm,
            lambda h: (self._feed_forward(h, training=training), None), training)
        return x, scores, new_cache

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
