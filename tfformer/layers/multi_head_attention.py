import keras
from keras import ops

from tfformer import masks as mask_lib
from tfformer.kv_cache import GrowingCache
from tfformer.layers.attention_distributions import get_distribution
from tfformer.layers.attention_scores import get_score_class
from tfformer.layers.banded_attention import (
    BANDED_MIN_BLOCKS,
    MIN_BLOCK,
    banded_self_attention,
)
from tfformer.layers.dropout import Dropout
from tfformer.layers.flat_einsum_dense import FlatEinsumDense
from tfformer.layers.rotary_embedding import RotaryEmbedding


def _positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")


@keras.saving.register_keras_serializable(package="tfformer")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention, a drop-in for `keras.layers.MultiHeadAttention`.

    Same constructor core, call and weight layout as Keras' layer (query, key,
    value and output `EinsumDense` kernels and biases, in that order), so
    `layer.set_weights(keras_mha.get_weights())` moves a trained layer over
    and gives equal outputs. Inputs are rank 3 (B, T, D); Keras'
    `attention_axes` is not supported. Beyond Keras it offers truncated
    windows, other score and distribution functions, an additive position
    bias, rotary positions, a KV cache and head-disagreement regularisation.

    Args:
        num_heads: int, N.
        key_dim: int, H, the width of each query and key head.
        value_dim: int, width of each value head; defaults to `key_dim`.
        dropout: float, default 0. Dropout on the attention weights.
        use_bias: bool, default True. Biases in the projections.
        output_shape: int, default None (the query's width). Output width.
        window: `(left, right)` or None. Truncated attention: query i sees
            keys in [i - left, i + right]; None on a side is unbounded.
            Self-attention (one tensor passed as query and value) with both
            sides bounded, no cache, bias, causal or explicit mask, and no
            requested weights runs block by block (`banded_attention`):
            linear in T, same results.
        score: str, default "scaled_dot". One of "scaled_dot", "dot",
            "general" (bilinear) and "additive" (Bahdanau); see
            `tfformer.layers.attention_scores`.
        distribution: str, default "softmax". "softmax" or "sparsemax"
            (exact zeros).
        use_rotary: bool, default False. Rotate projected queries and keys
            with `RotaryEmbedding` (positions offset by `cache_update_index`).
        rotary_max_wavelength: int, default 10000.
        head_disagreement: float, default 0. Weight of the output
            disagreement regulariser of Li et al. (2018): the mean cosine
            similarity between heads' outputs is added with `add_loss`.
        attention_axes: only None (attention over the sequence axis) is
            supported; accepted so Keras code passing it keeps working.
        kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer, kernel_constraint, bias_constraint: for the
        projections, as in Keras.
        seed: int, seed for the attention dropout.

    Call arguments:
        query: (B, T, D_q).
        value: (B, S, D_v).
        key: (B, S, D_k), defaults to `value`.
        query_mask, value_mask, key_mask: (B, T) / (B, S) bool; filled from
            the inputs' Keras masks. A padded query row gets zero weights.
        attention_mask: (B, T, S) bool, True = may attend. ANDed with the
            padding, causal and window masks.
        return_attention_scores: bool. Also return the weights (B, N, T, S).
        training: bool, dropout on or off.
        use_causal_mask: bool. Query i sees keys <= i (offset by the cache
            index when decoding).
        attention_bias: (B or 1, N or 1, T, S) added to the logits before
            normalising, e.g. from `RelativePositionBias`.
        cache: (B, 2, S_max, N, H) projected keys and values, or the pair
            `(keys, values)` of (B, N, S_max, H) tensors, which decodes
            faster: a stacked cache's keys and values are copied out of the
            stack and transposed for the matmuls every step. With
            `cache_update_index`, the projections of `key`/`value` (T steps)
            are written at that index and attention runs over the whole
            cache, causally masked so unwritten slots are never seen; a
            `tfformer.kv_cache.GrowingCache` pair instead holds only the
            positions decoded so far and the new ones are appended, so each
            step reads and copies only that prefix (graph mode; XLA needs the
            preallocated form). Without `cache_update_index` the cache is
            used as is (precomputed cross-attention; see `precompute_cache`),
            and unless `attention_bias` is given it may have fewer rows than
            the query: with B = G x B_cache, each cache row serves G
            consecutive query rows (beam search's hypotheses of one example),
            read once for all of them. The cache is returned in the form it
            was given.
        cache_update_index: int or scalar int tensor.

    Returns:
        `output` (B, T, O); `(output, scores)` with
        `return_attention_scores`; `(output, cache)` with a cache;
        `(output, scores, cache)` with both. The output carries the query's
        Keras mask.

    Example:

    >>> import numpy as np
    >>> layer = MultiHeadAttention(num_heads=2, key_dim=4, window=(2, 0))
    >>> x = np.random.rand(3, 6, 8).astype("float32")
    >>> tuple(layer(x, x).shape)
    (3, 6, 8)
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        value_dim=None,
        dropout=0.0,
        use_bias=True,
        output_shape=None,
        window=None,
        score="scaled_dot",
        distribution="softmax",
        use_rotary=False,
        rotary_max_wavelength=10000,
        head_disagreement=0.0,
        attention_axes=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if attention_axes not in (None, 1, (1,), [1]):
            raise ValueError(
                f"attention_axes={attention_axes!r} is not supported: inputs are (B, T, D) and "
                "attention runs over axis 1")
        _positive_int("num_heads", num_heads)
        _positive_int("key_dim", key_dim)
        if value_dim is not None:
            _positive_int("value_dim", value_dim)
        if output_shape is not None:
            if isinstance(output_shape, (tuple, list)) and len(output_shape) == 1:
                output_shape = output_shape[0]
            _positive_int("output_shape", output_shape)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got dropout={dropout!r}")
        if head_disagreement < 0:
            raise ValueError(f"head_disagreement must be >= 0, got head_disagreement={head_disagreement!r}")
        if use_rotary and key_dim % 2:
            raise ValueError(f"use_rotary needs an even key_dim, got key_dim={key_dim}")
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim
        self.dropout = dropout
        self.use_bias = use_bias
        self.output_shape = output_shape
        self.window = mask_lib.validate_window(window)
        self.score = score
        self.distribution = distribution
        self.use_rotary = use_rotary
        self.rotary_max_wavelength = rotary_max_wavelength
        self.head_disagreement = head_disagreement
        self.attention_axes = attention_axes
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.seed = seed
        self._score_class = get_score_class(score)
        self._distribute = get_distribution(distribution)
        self.supports_masking = True

    def _projection(self, equation, output_shape, bias_axes, name):
        # One initializer object per projection, as Keras' layer clones them.
        return FlatEinsumDense(
            equation,
            output_shape=output_shape,
            bias_axes=bias_axes if self.use_bias else None,
            kernel_initializer=self.kernel_initializer.__class__.from_config(
                self.kernel_initializer.get_config()),
            bias_initializer=self.bias_initializer.__class__.from_config(
                self.bias_initializer.get_config()),
            kernel_regularizer=self.kernel_regularizer,
            bias_regularizer=self.bias_regularizer,
            kernel_constraint=self.kernel_constraint,
            bias_constraint=self.bias_constraint,
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        for name, shape in (("query", query_shape), ("value", value_shape), ("key", key_shape)):
            if len(shape) != 3:
                raise ValueError(f"{name} must have shape (B, length, width), got {tuple(shape)}")
        value_dim = self.value_dim or self.key_dim
        heads = self.num_heads
        # Same equations and creation order as keras.layers.MultiHeadAttention
        # for rank-3 inputs, which is what makes set_weights() compatible.
        self._query_dense = self._projection("abc,cde->abde", (None, heads, self.key_dim), "de", "query")
        self._query_dense.build(query_shape)
        self._key_dense = self._projection("abc,cde->abde", (None, heads, self.key_dim), "de", "key")
        self._key_dense.build(key_shape)
        self._value_dense = self._projection("abc,cde->abde", (None, heads, value_dim), "de", "value")
        self._value_dense.build(value_shape)
        self._dropout_layer = Dropout(self.dropout, seed=self.seed, dtype=self.dtype_policy)
        output_dim = self.output_shape or query_shape[-1]
        self._output_dense = self._projection("abcd,cde->abe", (None, output_dim), "e", "attention_output")
        self._output_dense.build((query_shape[0], query_shape[1], heads, value_dim))
        self._score_layer = self._score_class(
            num_heads=heads, key_dim=self.key_dim, dtype=self.dtype_policy, name="score"
        )
        self._score_layer.build((None, None, heads, self.key_dim), (None, None, heads, self.key_dim))
        self._rotary = (
            RotaryEmbedding(self.rotary_max_wavelength, dtype=self.dtype_policy, name="rotary")
            if self.use_rotary
            else None
        )
        self.built = True

    # -- pieces a subclass may override ------------------------------------

    def project_key_value(self, value, key=None, start_index=0):
        """Projected keys (B, S, N, H) and values (B, S, N, H_v), rotary applied."""
        key = value if key is None else key
        key = self._key_dense(key)
        if self._rotary is not None:
            key = self._rotary(key, start_index=start_index)
        return key, self._value_dense(value)

    def precompute_cache(self, value, key=None, stacked=True):
        """A static cache of `value`'s keys and values, e.g. the encoder
        memory for cross-attention during decoding: (B, 2, S, N, H), or with
        `stacked=False` the pair (keys, values) of (B, N, S, H)."""
        self._check_cache_dims()
        key, value = self.project_key_value(value, key)
        if stacked:
            return ops.stack([key, value], axis=1)
        return _heads_first(key), _heads_first(value)

    def attend(self, query, key, value, mask, attention_bias=None, training=None,
               heads_first=False):
        """Core attention over projected tensors.

        query (B, T, N, H), key (B, S, N, H), value (B, S, N, H_v), mask
        (B|1, T, S) bool or None; with `heads_first` key and value are
        (B, N, S, H) and (B, N, S, H_v). Returns context (B, T, N, H_v) and
        weights (B, N, T, S).
        """
        if heads_first:
            logits = self._score_layer.heads_first(query, key)  # (B, N, T, S)
        else:
            logits = self._score_layer(query, key)  # (B, N, T, S)
        if attention_bias is not None:
            logits = logits + ops.cast(attention_bias, logits.dtype)
        mask4 = None if mask is None else ops.expand_dims(mask, 1)  # (B, 1, T, S)
        weights = self._attention_weights(logits, mask4)
        dropped = self._dropout_layer(weights, training=training)
        context = ops.einsum("bnts,bnsh->btnh" if heads_first else "bnts,bsnh->btnh",
                             dropped, value)  # (B, T, N, H_v)
        return context, weights

    # ----------------------------------------------------------------------

    def _attention_weights(self, logits, mask):
        """Logits and a bool mask that broadcasts to them -> weights in the compute
        dtype; the distribution runs in float32."""
        return ops.cast(self._distribute(ops.cast(logits, "float32"), mask), self.compute_dtype)

    def _check_cache_dims(self):
        if self.value_dim not in (None, self.key_dim):
            raise ValueError(
                f"A KV cache needs value_dim == key_dim, got value_dim={self.value_dim}, "
                f"key_dim={self.key_dim}"
            )

    def __call__(self, query, value, key=None, **kwargs):
        # Under a mixed policy Keras casts each input on its own, so self-attention on
        # float32 inputs would reach call() as two tensors, and `query is value` is what
        # lets a window run block by block. Cast once and pass the one tensor on.
        if value is query and (key is None or key is query) and self.autocast \
                and not keras.backend.is_keras_tensor(query):
            mask = mask_lib.keras_mask(query)
            query = value = self.dtype_policy.convert_input(query, True, self.input_dtype)
            mask_lib.set_keras_mask(query, mask)
            key = None if key is None else query
        return super().__call__(query, value, key=key, **kwargs)

    def call(
        self,
        query,
        value,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        return_attention_scores=False,
        training=None,
        use_causal_mask=False,
        attention_bias=None,
        cache=None,
        cache_update_index=None,
    ):
        key_is_value = key is None or key is value
        # The masks are consumed here (filled in by Keras from the inputs);
        # drop them from the inputs, as Keras' layer does, so the projections
        # do not warn that they would discard them.
        for tensor in (query, value, key):
            if tensor is not None:
                mask_lib.clear_keras_mask(tensor)
        query_offset = 0
        projected_query = self._query_dense(query)  # (B, T, N, H)
        if cache is not None:
            self._check_cache_dims()
            stacked = _is_stacked(cache)
            if cache_update_index is not None:
                query_offset = cache_update_index
                new_key, new_value = self.project_key_value(value, key, start_index=cache_update_index)
                cache = _write_cache(cache, stacked, new_key, new_value, cache_update_index)
                if isinstance(cache, GrowingCache) and query.shape[1] == 1:
                    # It holds exactly the positions up to this one query's: all visible.
                    use_causal_mask = False
                # The cache is indexed by position: padding masks of the new
                # steps do not apply to it; use attention_mask instead.
                value_mask = key_mask = None
            # (B, S, N, H) each, or (B, N, S, H) from a (keys, values) pair
            projected_key, projected_value = (
                (cache[:, 0], cache[:, 1]) if stacked else tuple(cache))
        else:
            projected_key, projected_value = self.project_key_value(value, key)
        heads_first = cache is not None and not stacked
        key_length = ops.shape(projected_key)[2 if heads_first else 1]
        if self._rotary is not None:
            projected_query = self._rotary(projected_query, start_index=query_offset)
        query_rows = None
        if cache is not None and cache_update_index is None and attention_bias is None:
            query_rows = ops.shape(projected_query)[:2]
            projected_query, grouped_query_mask, attention_mask = _group_query_rows(
                ops.shape(projected_key)[0], projected_query, query_mask, attention_mask)
        else:
            grouped_query_mask = query_mask

        def full():
            mask = self._attention_mask(
                projected_query,
                key_length,
                query_mask=grouped_query_mask,
                value_mask=value_mask,
                key_mask=None if key_is_value else key_mask,
                attention_mask=attention_mask,
                use_causal_mask=use_causal_mask,
                query_offset=query_offset,
            )
            context, weights = self.attend(projected_query, projected_key, projected_value,
                                           mask, attention_bias, training, heads_first)
            if query_rows is not None:
                context, weights = _ungroup_query_rows(query_rows, context, weights)
            return context, weights

        if self._can_band(query is value and key_is_value, cache, attention_mask,
                          attention_bias, use_causal_mask, return_attention_scores):
            context, weights = self._banded_or_full(
                projected_query, projected_key, projected_value, query_mask, value_mask,
                lambda: full()[0], training), None
        else:
            context, weights = full()
        if self.head_disagreement > 0:
            self.add_loss(self.head_disagreement * self._head_similarity(context, query_mask))
        output = self._output_dense(context)  # (B, T, O)

        results = (output,)
        if return_attention_scores:
            results += (weights,)
        if cache is not None:
            results += (cache,)
        return results[0] if len(results) == 1 else results

    def _can_band(self, self_attention, cache, attention_mask, attention_bias,
                  use_causal_mask, return_attention_scores):
        """Windowed self-attention whose weights nobody asks for runs block by block
        (linear in T); everything else takes the full (T, S) path."""
        return (self.window is not None and None not in self.window and self_attention
                and cache is None and attention_mask is None
                and attention_bias is None and not use_causal_mask
                and not return_attention_scores)

    def _banded_or_full(self, query, key, value, query_mask, value_mask, full, training):
        """Blocks pay off once a sequence spans several; shorter ones take the full path.
        So do lengths unknown when tracing: a `cond` between the two paths fails XLA's
        conversion of its gradient (measured under `jit_compile=True`, TF 2.21)."""
        length = query.shape[1]
        if length is None or length < BANDED_MIN_BLOCKS * max(*self.window, MIN_BLOCK):
            return full()
        return banded_self_attention(
            query, key, value, query_mask, value_mask, self.window, self._score_layer,
            self._attention_weights,
            lambda weights: self._dropout_layer(weights, training=training))

    def _attention_mask(
        self,
        query,
        key_length,
        query_mask,
        value_mask,
        key_mask,
        attention_mask,
        use_causal_mask,
        query_offset,
    ):
        query_length = ops.shape(query)[1]
        structural = []
        if use_causal_mask:
            structural.append(mask_lib.causal_mask(query_length, key_length, query_offset))
        if self.window is not None:
            left, right = self.window
            structural.append(
                mask_lib.window_mask(query_length, key_length, left, right, query_offset)
            )
        return mask_lib.combine_masks(
            mask_lib.padding_mask(query_mask, value_mask),
            mask_lib.padding_mask(None, key_mask),
            attention_mask,
            *structural,
        )

    def _head_similarity(self, context, query_mask):
        """Mean cosine similarity between every pair of heads' outputs."""
        unit = ops.cast(context, "float32")
        unit = unit / (ops.norm(unit, axis=-1, keepdims=True) + 1e-6)  # (B, T, N, H)
        similarity = ops.einsum("btnh,btmh->btnm", unit, unit)  # (B, T, N, N)
        per_position = ops.mean(similarity, axis=(-2, -1))  # (B, T)
        if query_mask is None:
            return ops.mean(per_position)
        weight = ops.cast(query_mask, "float32")
        return ops.sum(per_position * weight) / ops.maximum(ops.sum(weight), 1.0)

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        return (*query_shape[:-1], self.output_shape or query_shape[-1])

    def compute_output_spec(self, query, value, key=None, return_attention_scores=False,
                            cache=None, cache_update_index=None, **kwargs):
        output = keras.KerasTensor(
            self.compute_output_shape(query.shape, value.shape), dtype=self.compute_dtype
        )
        results = (output,)
        if return_attention_scores:
            stacked = _is_stacked(cache)
            key_length = value.shape[1] if cache is None else (
                cache.shape[2] if stacked else cache[0].shape[2])
            results += (
                keras.KerasTensor(
                    (query.shape[0], self.num_heads, query.shape[1], key_length),
                    dtype=self.compute_dtype,
                ),
            )
        if cache is not None:
            grows = isinstance(cache, GrowingCache) and cache_update_index is not None
            results += (keras.tree.map_structure(
                lambda c: keras.KerasTensor(
                    (*c.shape[:2], None, *c.shape[3:]) if grows else c.shape, dtype=c.dtype),
                cache),)
        return results[0] if len(results) == 1 else results

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            key_dim=self.key_dim,
            value_dim=self.value_dim,
            dropout=self.dropout,
            use_bias=self.use_bias,
            output_shape=self.output_shape,
            window=self.window,
            score=self.score,
            distribution=self.distribution,
            use_rotary=self.use_rotary,
            rotary_max_wavelength=self.rotary_max_wavelength,
            head_disagreement=self.head_disagreement,
            attention_axes=self.attention_axes,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
            bias_regularizer=keras.regularizers.serialize(self.bias_regularizer),
            kernel_constraint=keras.constraints.serialize(self.kernel_constraint),
            bias_constraint=keras.constraints.serialize(self.bias_constraint),
            seed=self.seed,
        )
        return config


def _is_stacked(cache):
    """A (B, 2, S, N, H) tensor, not a (keys, values) pair."""
    return not isinstance(cache, (tuple, list))


def _write_cache(cache, stacked, new_key, new_value, index):
    """`cache` with the new keys and values (B, T, N, H) written at position `index`."""
    if stacked:  # one write of both (two writes and a stack copied the cache three times)
        new_entries = ops.cast(ops.stack([new_key, new_value], axis=1), cache.dtype)
        return ops.slice_update(cache, [0, 0, index, 0, 0], new_entries)
    if isinstance(cache, GrowingCache):
        return cache.append(_heads_first(new_key), _heads_first(new_value))
    keys, values = cache
    start = [0, 0, index, 0]
    return (ops.slice_update(keys, start, ops.cast(_heads_first(new_key), keys.dtype)),
            ops.slice_update(values, start, ops.cast(_heads_first(new_value), values.dtype)))


def _group_query_rows(cache_rows, query, query_mask, attention_mask):
    """Queries (B, T, N, H) over a cache of B_c rows, B = G * B_c: each cache row
    serves G consecutive query rows (e.g. beam search's hypotheses of one example),
    which become its G * T query positions, so the cache is read once per row."""
    batch, length = ops.shape(query)[:2]
    query = ops.reshape(query, (cache_rows, -1, *query.shape[2:]))
    if query_mask is not None:
        query_mask = ops.reshape(query_mask, (cache_rows, -1))
    if attention_mask is not None:  # (B or 1, T, S)
        keys = ops.shape(attention_mask)[-1]
        attention_mask = ops.reshape(ops.broadcast_to(attention_mask, (batch, length, keys)),
                                     (cache_rows, -1, keys))
    return query, query_mask, attention_mask


def _ungroup_query_rows(rows, context, weights):
    """Undoes `_group_query_rows` on the context (B_c, G*T, N, H) -> (B, T, N, H) and the
    weights (B_c, N, G*T, S) -> (B, N, T, S)."""
    batch, length = rows
    context = ops.reshape(context, (batch, length, *context.shape[2:]))
    heads, keys = weights.shape[1], ops.shape(weights)[-1]
    weights = ops.reshape(weights, (ops.shape(weights)[0], heads, -1, length, keys))
    weights = ops.reshape(ops.transpose(weights, (0, 2, 1, 3, 4)), (batch, heads, length, keys))
    return context, weights


def _heads_first(tensor):
    """(B, S, N, H) -> (B, N, S, H)."""
    return ops.transpose(tensor, (0, 2, 1, 3))
