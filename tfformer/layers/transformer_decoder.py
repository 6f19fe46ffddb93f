import keras
from keras import ops

from tfformer import masks as mask_lib
from tfformer.kv_cache import GrowingCache
from tfformer.layers.layer_normalization import LayerNormalization
from tfformer.layers.transformer_block_config import check_block_args, check_input_width
from tfformer.layers.transformer_decoder_block import TransformerDecoderBlock


@keras.saving.register_keras_serializable(package="tfformer")
class TransformerDecoder(keras.layers.Layer):
    """A stack of `TransformerDecoderBlock`s with a stacked KV cache.

    The cache of the whole stack is one tensor (B, L, 2, T_max, N, H): layer
    l's self-attention keys and values. `initial_cache` makes it, and each
    call with `cache` and `cache_update_index` returns it updated, so a
    `tf.while_loop` (and XLA) can drive decoding. Cross-attention keys and
    values are computed once by `precompute_cross_attention_cache(memory)`.
    With `stacked=False` both are instead a tuple of L `(keys, values)`
    pairs of (B, N, T, H) tensors: the same numbers, but a step then reads
    each layer's keys and values without copying them out of the stack or
    transposing them for the matmuls (at batch 32 on a CPU, decoding runs
    about twice as fast). `initial_cache(batch, None, stacked=False)` makes
    per-layer caches that grow by one position each step instead of being
    preallocated: faster again in graph mode, not for XLA.

    Args:
        num_layers: int, L.
        d_model, num_heads, intermediate_dim, dropout, activation, norm_first,
        layer_norm_epsilon, cross_attention, window, use_rotary, activation_dropout: as in
        `TransformerDecoderBlock`, for every layer.

    Call arguments:
        targets: (B, T, D).
        memory: (B, S, D) or None.
        targets_mask: (B, T); memory_mask: (B, S); default to Keras masks.
        self_attention_mask: (B, T, T'); cross_attention_mask: (B, T, S).
        cache: (B, L, 2, T_max, N, H) or L (keys, values) pairs, with
            `cache_update_index`; returned updated in the same form.
        cross_attention_cache: (B, L, 2, S, N, H) or L (keys, values) pairs.
        cache_update_index: int or scalar int tensor.
        training, return_attention_scores: bool.

    Returns:
        `outputs` (B, T, D), then a list of per-layer score dicts
        (`{"self", "cross"}`) if `return_attention_scores`, then the updated
        cache if `cache` was given.

    Example:

    >>> import numpy as np
    >>> decoder = TransformerDecoder(2, d_model=16, num_heads=4, intermediate_dim=32)
    >>> memory = np.zeros((2, 7, 16), "float32")
    >>> cache = decoder.initial_cache(batch_size=2, max_length=5)
    >>> step, cache = decoder(np.zeros((2, 1, 16), "float32"), memory, cache=cache,
    ...                       cache_update_index=0)
    >>> tuple(step.shape), tuple(cache.shape)
    ((2, 1, 16), (2, 2, 2, 5, 4, 4))
    """

    def __init__(self, num_layers, d_model, num_heads, intermediate_dim, dropout=0.1,
                 activation="relu", norm_first=False, layer_norm_epsilon=1e-6,
                 cross_attention=True, window=None, use_rotary=False,
                 activation_dropout=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"num_layers must be a positive int, got num_layers={num_layers!r}")
        check_block_args(d_model, num_heads, intermediate_dim, dropout)
        self.num_layers = num_layers
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
        self.activation_dropout = activation_dropout
        self.blocks = [
            TransformerDecoderBlock(
                d_model, num_heads, intermediate_dim, dropout=dropout, activation=activation,
                norm_first=norm_first, layer_norm_epsilon=layer_norm_epsilon,
                cross_attention=cross_attention, window=self.window, use_rotary=use_rotary,
                activation_dropout=activation_dropout, dtype=self.dtype_policy, name=f"layer_{i}",
            )
            for i in range(num_layers)
        ]
        self._final_norm = (
            LayerNormalization(
                epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="final_norm")
            if norm_first else None
        )
        self.supports_masking = True

    def build(self, targets_shape, memory_shape=None):
        check_input_width(self, targets_shape)
        for block in self.blocks:
            block.build(targets_shape, memory_shape)
        if self._final_norm is not None:
            self._final_norm.build(targets_shape)
        self.built = True

    def initial_cache(self, batch_size, max_length, dtype=None, stacked=True):
        """Zeros of shape (B, L, 2, T_max, N, H), or with `stacked=False`
        L (keys, values) pairs of zeros (B, N, T_max, H). With
        `max_length=None` (and `stacked=False`), L empty
        `tfformer.kv_cache.GrowingCache` pairs instead, which every step
        extends: faster in graph mode, where each step then touches only
        the positions decoded so far, but not for XLA."""
        head_dim = self.d_model // self.num_heads
        dtype = dtype or self.compute_dtype
        if max_length is None:
            if stacked:
                raise ValueError("A growing cache (max_length=None) is per layer: pass "
                                 "stacked=False.")
            return tuple(GrowingCache.empty(batch_size, self.num_heads, head_dim, dtype)
                         for _ in range(self.num_layers))
        if stacked:
            return ops.zeros(
                (batch_size, self.num_layers, 2, max_length, self.num_heads, head_dim), dtype)
        shape = (batch_size, self.num_heads, max_length, head_dim)
        return tuple((ops.zeros(shape, dtype), ops.zeros(shape, dtype))
                     for _ in range(self.num_layers))

    def precompute_cross_attention_cache(self, memory, stacked=True):
        """(B, L, 2, S, N, H) cross-attention keys and values of `memory`, or
        with `stacked=False` L (keys, values) pairs of (B, N, S, H). Builds the
        decoder first if it has never been called."""
        if not self.built:
            self.build((None, None, self.d_model), tuple(memory.shape))
        caches = [block.precompute_cross_attention_cache(memory, stacked) for block in self.blocks]
        return ops.stack(caches, axis=1) if stacked else tuple(caches)

    def call(
        self,
        targets,
        memory=None,
        targets_mask=None,
        memory_mask=None,
        self_attention_mask=None,
        cross_attention_mask=None,
        cache=None,
        cross_attention_cache=None,
        cache_update_index=None,
        training=None,
        return_attention_scores=False,
    ):
        if targets_mask is None:
            targets_mask = mask_lib.keras_mask(targets)
        if memory is not None and memory_mask is None:
            memory_mask = mask_lib.keras_mask(memory)
        if cache is not None and cache_update_index is None:
            raise ValueError("A decoder cache needs cache_update_index (the position to write)")
        x = targets
        all_scores, layer_caches = [], []
        for i, block in enumerate(self.blocks):
            outputs = block(
                x, memory, targets_mask=targets_mask, memory_mask=memory_mask,
                self_attention_mask=self_attention_mask,
                cross_attention_mask=cross_attention_mask,
                self_attention_cache=_layer_cache(cache, i),
                cross_attention_cache=_layer_cache(cross_attention_cache, i),
                cache_update_index=cache_update_index, training=training,
                return_attention_scores=True,
            )
            x, scores = outputs[0], outputs[1]
            all_scores.append(scores)
            if cache is not None:
                layer_caches.append(outputs[2])
        if self._final_norm is not None:
            x = self._final_norm(x)
        results = (x,)
        if return_attention_scores:
            results += (all_scores,)
        if cache is not None:
            results += (tuple(layer_caches) if _is_per_layer(cache)
                        else ops.stack(layer_caches, axis=1),)  # (B, L, 2, T_max, N, H)
        return results[0] if len(results) == 1 else results

    def compute_mask(self, targets, previous_mask=None):
        return previous_mask

    def compute_output_shape(self, targets_shape, memory_shape=None):
        return targets_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            num_layers=self.num_layers, d_model=self.d_model, num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim, dropout=self.dropout,
            activation=self.activation, norm_first=self.norm_first,
            layer_norm_epsilon=self.layer_norm_epsilon, cross_attention=self.cross_attention,
            window=self.window, use_rotary=self.use_rotary,
            activation_dropout=self.activation_dropout,
        )
        return config


def _is_per_layer(cache):
    return isinstance(cache, (tuple, list))


def _layer_cache(cache, layer):
    if cache is None:
        return None
    return cache[layer] if _is_per_layer(cache) else cache[:, layer]
