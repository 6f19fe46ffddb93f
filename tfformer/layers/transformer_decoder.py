import keras
from keras import ops

from tfformer import kv_cache
from tfformer import masks as mask_lib
from tfformer.layers.block_arguments import check_block_args, check_input_width
from tfformer.layers.cached_decoder_layer import CachedDecoderLayer
from tfformer.layers.layer_normalization import LayerNormalization
from tfformer.layers.transformer_decoder_block import TransformerDecoderBlock


@keras.saving.register_keras_serializable(package="tfformer")
class TransformerDecoder(CachedDecoderLayer):
    """A stack of `TransformerDecoderBlock`s with a stacked KV cache.

    The cache of the whole stack is one tensor (B, L, 2, T_max, N, H): layer
    l's self-attention keys and values. `initial_cache` makes it, and each
    `step(targets, cache, cache_update_index)` returns it updated, so a
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
        training, return_attention_scores: bool.

    Returns:
        `outputs` (B, T, D), or with `return_attention_scores` `(outputs,
        scores)`, a list of per-layer score dicts (`{"self", "cross"}`).
        Decoding goes through `step`, which returns `(outputs, scores, cache)`.

    Example:

    >>> import numpy as np
    >>> decoder = TransformerDecoder(2, d_model=16, num_heads=4, intermediate_dim=32)
    >>> memory = np.zeros((2, 7, 16), "float32")
    >>> cache = decoder.initial_cache(batch_size=2, max_length=5)
    >>> step, scores, cache = decoder.step(np.zeros((2, 1, 16), "float32"), cache,
    ...                                    cache_update_index=0, memory=memory)
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
            return tuple(kv_cache.GrowingCache.empty(batch_size, self.num_heads, head_dim, dtype)
                         for _ in range(self.num_layers))
        if stacked:
            return ops.zeros(
                (batch_size, self.num_layers, 2, max_length, self.num_heads, head_dim), dtype)
        shape = (batch_size, self.num_heads, max_length, head_dim)
        return tuple(kv_cache.PairCache(ops.zeros(shape, dtype), ops.zeros(shape, dtype))
                     for _ in range(self.num_layers))

    def precompute_cross_attention_cache(self, memory, stacked=True):
        """(B, L, 2, S, N, H) cross-attention keys and values of `memory`, or
        with `stacked=False` L (keys, values) pairs of (B, N, S, H). Builds the
        decoder first if it has never been called."""
        if not self.built:
            self.build((None, None, self.d_model), tuple(memory.shape))
        caches = [block.precompute_cross_attention_cache(memory, stacked) for block in self.blocks]
        return ops.stack(caches, axis=1) if stacked else tuple(caches)

    def _forward(self, targets, memory, targets_mask, memory_mask, self_attention_mask,
                 cross_attention_mask, training, cache=None, cross_attention_cache=None,
                 cache_update_index=None):
        """-> outputs (B, T, D), per-layer scores, the updated cache (or None)."""
        if targets_mask is None:
            targets_mask = mask_lib.keras_mask(targets)
        if memory is not None and memory_mask is None:
            memory_mask = mask_lib.keras_mask(memory)
        x = targets
        all_scores, layer_caches = [], []
        layer_inputs = zip(self.blocks, kv_cache.per_layer(cache, self.num_layers),
                           kv_cache.per_layer(cross_attention_cache, self.num_layers))
        for block, layer_cache, layer_cross_cache in layer_inputs:
            masks = dict(targets_mask=targets_mask, memory_mask=memory_mask,
                         self_attention_mask=self_attention_mask,
                         cross_attention_mask=cross_attention_mask, training=training)
            if layer_cache is None:
                x, scores = block(x, memory, return_attention_scores=True, **masks)
            else:
                x, scores, layer_cache = block.step(
                    x, layer_cache, cache_update_index, memory,
                    cross_attention_cache=layer_cross_cache, **masks)
                layer_caches.append(layer_cache)
            all_scores.append(scores)
        if self._final_norm is not None:
            x = self._final_norm(x)
        new_cache = None if cache is None else kv_cache.join_layers(cache, layer_caches)
        return x, all_scores, new_cache

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
