import keras
from keras import ops

from tfformer import kv_cache
from tfformer import masks as mask_lib
from tfformer.layers.attention_distributions import get_distribution
from tfformer.layers.attention_equations import attention_equations, projection_equation
from tfformer.layers.attention_scores import get_score_class
from tfformer.layers.banded_attention import (
    BANDED_MIN_BLOCKS,
    MIN_BLOCK,
    banded_self_attention,
)
from tfformer.layers.dropout import Dropout
from tfformer.layers.flat_einsum_dense import FlatEinsumDense
from tfformer.layers.rotary_embedding import RotaryEmbedding

# Arguments beyond Keras' and their "off" values. They act on a sequence axis, so
# attention over other axes (Keras' `attention_axes`) refuses any that is on.
_SEQUENCE_ONLY = {"window": None, "score": "scaled_dot", "distribution": "softmax",
                  "use_rotary": False, "head_disagreement": 0.0}


def _narrowest(window, sliding_window):
    """Our `(left, right)` window ANDed with Keras' symmetric `sliding_window`
    (|i - j| < sliding_window), as one window; None on a side is unbounded."""
    if sliding_window is None:
        return window
    band = sliding_window - 1
    if window is None:
        return (band, band)
    return tuple(band if side is None else min(side, band) for side in window)


@keras.saving.register_keras_serializable(package="tfformer")
class MultiHeadAttention(keras.layers.MultiHeadAttention):
    """Multi-head attention, a drop-in for `keras.layers.MultiHeadAttention`.

    A subclass of Keras' layer with its constructor, call, weights (in the
    same order, so `set_weights(keras_mha.get_weights())` moves a trained
    layer over), sublayers (`query_dense`, `key_dense`, `value_dense`,
    `output_dense`, the optional `_gate_dense`), `attention_axes` over any
    axes, `use_gate`, `sliding_window` and the `_compute_attention` hook.
    Keras' own test file for the layer runs against this class in our suite
    (`tests/layers/test_keras_drop_ins.py`). The projections are
    `FlatEinsumDense`, which trains faster on TensorFlow and keeps Keras'
    quantization (`Model.quantize`) and LoRA (`enable_lora`). Beyond Keras,
    for attention over the sequence axis of (B, T, D) inputs: truncated
    windows (block by block when long), other score and distribution
    functions, an additive attention bias, rotary positions, a KV cache and
    head-disagreement regularisation.

    Args:
        num_heads: int, N.
        key_dim: int, H, the width of each query and key head.
        value_dim: int, width of each value head; defaults to `key_dim`.
        dropout: float in [0, 1), default 0. Dropout on the attention weights.
        use_bias: bool, default True. Biases in the projections.
        output_shape: int or tuple, default None (the query's width): the
            output's trailing shape.
        attention_axes: axes of the inputs attended over; default None, all
            axes but the batch and the last (for (B, T, D), the sequence).
        sliding_window: int or None. Keras' symmetric band: query i sees keys
            j with |i - j| < sliding_window. ANDed with `window`.
        flash_attention: as Keras'; TensorFlow has no flash kernel, so True
            is refused as Keras' layer refuses it on TensorFlow.
        use_gate: bool, default False. Gated attention (Qiu et al., 2025):
            the heads' outputs are multiplied by sigmoid(query projection).
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
            with `RotaryEmbedding` (offset by the cache index in `step`).
        rotary_max_wavelength: int, default 10000.
        head_disagreement: float, default 0. Weight of the output
            disagreement regulariser of Li et al. (2018): the mean cosine
            similarity between heads' outputs is added with `add_loss`.
        kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer, activity_regularizer, kernel_constraint,
        bias_constraint: for the projections, as in Keras.
        seed: int, seed for the attention dropout.

    Call arguments:
        query: (B, T, D_q); with `attention_axes`, any rank as in Keras.
        value: (B, S, D_v).
        key: (B, S, D_k), defaults to `value`.
        query_mask, value_mask, key_mask: (B, T) / (B, S) bool; filled from
            the inputs' Keras masks. A padded query row gets zero weights.
        attention_mask: (B, T, S), (T, S) or per head (B, N, T, S); True (or
            1) = may attend. ANDed with the padding, causal and window masks.
        return_attention_scores: bool. Also return the weights (B, N, T, S).
        training: bool, dropout on or off.
        use_causal_mask: bool. Query i sees keys <= i.
        attention_bias: (B or 1, N or 1, T, S) added to the logits before
            normalising, e.g. from `RelativePositionBias`.

    Returns:
        `output` (B, T, O), carrying the query's Keras mask, or with
        `return_attention_scores` `(output, scores)`, scores (B, N, T, S), as
        Keras' layer returns them.

    Decoding with a KV cache goes through `step(query, cache, ...)`, which
    returns `(output, scores, cache)`; `precompute_cache(memory)` makes a
    static cross-attention cache. See `tfformer.kv_cache` for the forms.

    Example:

    >>> import numpy as np
    >>> layer = MultiHeadAttention(num_heads=2, key_dim=4, window=(2, 0))
    >>> x = np.random.rand(3, 6, 8).astype("float32")
    >>> tuple(layer(x, x).shape)
    (3, 6, 8)
    >>> cache = np.zeros((3, 2, 6, 2, 4), "float32")  # (B, 2, S_max, N, H)
    >>> out, scores, cache = layer.step(x[:, :1], cache, cache_update_index=0,
    ...                                 use_causal_mask=True)
    >>> tuple(out.shape), tuple(scores.shape)
    ((3, 1, 8), (3, 2, 1, 6))
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        value_dim=None,
        dropout=0.0,
        use_bias=True,
        output_shape=None,
        attention_axes=None,
        sliding_window=None,
        flash_attention=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        use_gate=False,
        seed=None,
        window=None,
        score="scaled_dot",
        distribution="softmax",
        use_rotary=False,
        rotary_max_wavelength=10000,
        head_disagreement=0.0,
        **kwargs,
    ):
        super().__init__(
            num_heads, key_dim, value_dim=value_dim, dropout=dropout, use_bias=use_bias,
            output_shape=output_shape, attention_axes=attention_axes,
            sliding_window=sliding_window, flash_attention=flash_attention,
            kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint, use_gate=use_gate, seed=seed, **kwargs)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got dropout={dropout!r}")
        if head_disagreement < 0:
            raise ValueError(f"head_disagreement must be >= 0, got head_disagreement={head_disagreement!r}")
        if use_rotary and key_dim % 2:
            raise ValueError(f"use_rotary needs an even key_dim, got key_dim={key_dim}")
        if flash_attention:
            raise ValueError("flash_attention=True: flash attention is not supported in the "
                             "tensorflow backend; leave flash_attention=None")
        self.window = mask_lib.validate_window(window)
        self.score = score
        self.distribution = distribution
        self.use_rotary = use_rotary
        self.rotary_max_wavelength = rotary_max_wavelength
        self.head_disagreement = head_disagreement
        self._score_class = get_score_class(score)
        self._distribute = get_distribution(distribution)
        self._window = _narrowest(self.window, sliding_window)

    def _input_projection(self, input_rank, width, name, **kwargs):
        """(B, ..., D) -> (B, ..., N, width), as Keras' layer projects."""
        equation, bias_axes, output_rank = projection_equation(input_rank - 1, 1, 2)
        return FlatEinsumDense(
            equation,
            output_shape=[None] * (output_rank - 3) + [self._num_heads, width],
            bias_axes=bias_axes if self._use_bias else None,
            name=name,
            **kwargs,
            **self._get_common_kwargs_for_sublayer(),  # a fresh initializer for each
        )

    def _make_output_dense(self, query_shape, common_kwargs, name=None):
        """(B, ..., N, H_v) -> (B, ..., *output_shape); Keras' hook, our projection."""
        output_shape = self._output_shape or (query_shape[-1],)
        equation, bias_axes, output_rank = projection_equation(
            len(query_shape) - 1, 2, len(output_shape))
        return FlatEinsumDense(
            equation,
            output_shape=[None] * (output_rank - 1 - len(output_shape)) + list(output_shape),
            bias_axes=bias_axes if self._use_bias else None,
            name=name,
            **common_kwargs,
        )

    def build(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        self.compute_output_shape(query_shape, value_shape, key_shape)  # Keras' shape checks
        heads, value_dim = self._num_heads, self._value_dim
        # Keras' creation order (query, key, gate, value, output): set_weights() compatible.
        self._query_dense = self._input_projection(len(query_shape), self._key_dim, "query")
        self._query_dense.build(query_shape)
        self._key_dense = self._input_projection(len(key_shape), self._key_dim, "key")
        self._key_dense.build(key_shape)
        if self._use_gate:
            self._gate_dense = self._input_projection(
                len(query_shape), value_dim, "gate", activation="sigmoid")
            self._gate_dense.build(query_shape)
        self._value_dense = self._input_projection(len(value_shape), value_dim, "value")
        self._value_dense.build(value_shape)
        self._build_attention(len(query_shape) + 1)
        self._sequence_attention = len(query_shape) == 3 and self._attention_axes == (1,)
        if not self._sequence_attention:
            self._refuse_sequence_only_arguments(query_shape)
        self._output_dense = self._make_output_dense(
            query_shape, self._get_common_kwargs_for_sublayer(), "attention_output")
        self._output_dense.build((*query_shape[:-1], heads, value_dim))
        self._score_layer = self._score_class(
            num_heads=heads, key_dim=self._key_dim, dtype=self.dtype_policy, name="score"
        )
        self._score_layer.build((None, None, heads, self._key_dim), (None, None, heads, self._key_dim))
        self._rotary = (
            RotaryEmbedding(self.rotary_max_wavelength, dtype=self.dtype_policy, name="rotary")
            if self.use_rotary
            else None
        )
        self.built = True

    def _build_attention(self, rank):
        """Keras' hook: the attention axes, einsum equations and softmax for projected
        tensors of `rank`, and our dropout."""
        axes = self._attention_axes
        axes = tuple(range(1, rank - 2)) if axes is None else axes
        self._attention_axes = tuple(axis if axis >= 0 else rank - 1 + axis for axis in axes)
        self._dot_product_equation, self._combine_equation, scores_rank = attention_equations(
            rank, self._attention_axes)
        self._softmax = keras.layers.Softmax(
            axis=tuple(range(scores_rank - len(self._attention_axes), scores_rank)),
            dtype=self.dtype_policy)
        self._dropout_layer = Dropout(self._dropout, seed=self.seed, dtype=self.dtype_policy)

    def _refuse_sequence_only_arguments(self, query_shape):
        active = [f"{name}={getattr(self, name)!r}" for name, off in _SEQUENCE_ONLY.items()
                  if getattr(self, name) != off]
        if active:
            raise ValueError(
                f"{', '.join(active)} act on the sequence axis of (B, T, D) inputs; got a query "
                f"of shape {tuple(query_shape)} attended over axes {self._attention_axes}")

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
        return kv_cache.from_projections(*self.project_key_value(value, key), stacked)

    def attend(self, query, key, value, mask, attention_bias=None, training=None,
               heads_first=False):
        """Core attention over projected tensors.

        query (B, T, N, H), key (B, S, N, H), value (B, S, N, H_v), mask
        (B|1, T, S), (T, S) or (B|1, N|1, T, S) bool, or None; with `heads_first` key and value are
        (B, N, S, H) and (B, N, S, H_v). Returns context (B, T, N, H_v) and
        weights (B, N, T, S).
        """
        if heads_first:
            logits = self._score_layer.heads_first(query, key)  # (B, N, T, S)
        else:
            logits = self._score_layer(query, key)  # (B, N, T, S)
        if attention_bias is not None:
            logits = logits + ops.cast(attention_bias, logits.dtype)
        mask4 = _per_head(mask)  # (B|1, N|1, T, S)
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
        if self.value_dim != self.key_dim:  # Keras' value_dim defaults to key_dim
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

    def _compute_attention(self, query, key, value, attention_mask=None, training=None,
                           return_attention_scores=False, use_causal_mask=False):
        """Keras' hook, called with projected tensors. Over the sequence axis
        ((B, T, N, H) queries) it runs our score and distribution, folding in a
        causal mask when asked; other ranks take Keras' n-d attention.

        Returns the context (B, T, N, H_v) and the weights (B, N, T, S).
        """
        if len(query.shape) != 4:
            return super()._compute_attention(query, key, value, attention_mask, training,
                                              return_attention_scores, use_causal_mask)
        mask = None if attention_mask is None else _per_head(ops.cast(attention_mask, "bool"))
        if use_causal_mask:
            causal = mask_lib.causal_mask(ops.shape(query)[1], ops.shape(key)[1])
            mask = mask_lib.combine_masks(mask, _per_head(causal))
        return self.attend(query, key, value, mask, training=training)

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
    ):
        if not self._sequence_attention:
            if attention_bias is not None:
                raise _not_on_sequence_axis(self._attention_axes)
            return super().call(query, value, key, query_mask, value_mask, key_mask,
                                attention_mask, return_attention_scores, training,
                                use_causal_mask)
        key_is_value = key is None or key is value
        # The masks are consumed here (filled in by Keras from the inputs);
        # drop them from the inputs, as Keras' layer does, so the projections
        # do not warn that they would discard them.
        for tensor in (query, value, key):
            if tensor is not None:
                mask_lib.clear_keras_mask(tensor)
        projected_key, projected_value = self.project_key_value(value, key)
        output, weights = self._attend_and_project(
            query, projected_key, projected_value, heads_first=False, query_offset=0,
            query_mask=query_mask, value_mask=value_mask,
            key_mask=None if key_is_value else key_mask, attention_mask=attention_mask,
            use_causal_mask=use_causal_mask, attention_bias=attention_bias, training=training,
            return_attention_scores=return_attention_scores,
            may_band=query is value and key_is_value and not return_attention_scores)
        return (output, weights) if return_attention_scores else output

    def step(
        self,
        query,
        cache,
        cache_update_index=None,
        value=None,
        key=None,
        query_mask=None,
        value_mask=None,
        attention_mask=None,
        use_causal_mask=False,
        attention_bias=None,
        training=None,
    ):
        """Attention over a KV cache, for decoding: `(output, scores, cache)`.

        Args:
            query: (B, T, D_q), the step's positions (T is usually 1).
            cache: any form of `tfformer.kv_cache` (a (B, 2, S_max, N, H)
                tensor, a `(keys, values)` pair of (B, N, S_max, H), a
                `GrowingCache`); returned in the form it came in.
            cache_update_index: int or scalar int tensor. With it, the
                projections of `key`/`value` (default: `query`, i.e. self-
                attention) are written at that index (appended to a growing
                cache) and the query attends over the whole cache, causally
                masked when asked so unwritten slots are never seen. Without
                it the cache is static (cross-attention over a memory, from
                `precompute_cache`) and, unless `attention_bias` is given, it
                may have fewer rows than the query: with B = G x B_cache, each
                cache row serves G consecutive query rows (beam search's
                hypotheses of one example) and is read once for all of them.
            value, key: (B, T, D_v) / (B, T, D_k), the step's inputs to write.
            query_mask: (B, T) bool. value_mask: (B, S) bool, for a static
                cache (a written cache is indexed by position: mask it with
                `attention_mask` instead).
            attention_mask, use_causal_mask, attention_bias, training: as in
                `call`; the causal and window masks are offset by
                `cache_update_index`, as are rotary positions.

        Returns:
            `output` (B, T, O), `scores` (B, N, T, S) and the cache.
        """
        self._check_cache_dims()
        if not self._sequence_attention:
            raise _not_on_sequence_axis(self._attention_axes)
        query = ops.cast(query, self.compute_dtype)
        given, cache = cache, kv_cache.as_cache(cache)
        query_offset = 0
        if cache_update_index is not None:
            value = query if value is None else ops.cast(value, self.compute_dtype)
            key = None if key is None else ops.cast(key, self.compute_dtype)
            if not self.built:
                self.build(query.shape, value.shape, None if key is None else key.shape)
            query_offset = cache_update_index
            cache = cache.write(*self.project_key_value(value, key, start_index=query_offset),
                                query_offset)
            if cache.grows and query.shape[1] == 1:
                # It holds exactly the positions up to this one query's: all visible.
                use_causal_mask = False
            value_mask = None
        elif not self.built:
            raise ValueError(f"{self.name} reads a static cache before it was built: call it "
                             "once, or build(query_shape, value_shape), first")
        projected_key, projected_value = cache.read()
        output, weights = self._attend_and_project(
            query, projected_key, projected_value, heads_first=cache.heads_first,
            query_offset=query_offset, query_mask=query_mask, value_mask=value_mask,
            key_mask=None, attention_mask=attention_mask, use_causal_mask=use_causal_mask,
            attention_bias=attention_bias, training=training, return_attention_scores=True,
            may_band=False,
            cache_rows=None if cache_update_index is not None else ops.shape(projected_key)[0])
        return output, weights, kv_cache.in_form_of(given, cache)

    def _attend_and_project(self, query, projected_key, projected_value, *, heads_first,
                            query_offset, query_mask, value_mask, key_mask, attention_mask,
                            use_causal_mask, attention_bias, training,
                            return_attention_scores, may_band, cache_rows=None):
        """The query (B, T, D_q) over projected keys and values -> output (B, T, O) and
        weights (B, N, T, S) (None when computed block by block). `cache_rows`: the rows
        of a static cache, each serving consecutive query rows."""
        hook = type(self)._compute_attention is not MultiHeadAttention._compute_attention
        if hook and attention_bias is not None:
            raise ValueError("attention_bias does not reach an overridden _compute_attention, "
                             "whose signature has no place for it")
        if heads_first and hook:  # the hook takes Keras' (B, S, N, H) layout
            projected_key, projected_value = (kv_cache.heads_first(projected_key),
                                              kv_cache.heads_first(projected_value))
            heads_first = False
        gate = self._gate_dense(query) if self._use_gate else None  # (B, T, N, H_v)
        projected_query = self._query_dense(query)  # (B, T, N, H)
        if self._rotary is not None:
            projected_query = self._rotary(projected_query, start_index=query_offset)
        key_length = ops.shape(projected_key)[2 if heads_first else 1]
        query_rows = None
        grouped_query_mask = query_mask
        if (cache_rows is not None and attention_bias is None and not hook
                and (attention_mask is None or len(attention_mask.shape) < 4)):
            query_rows = ops.shape(projected_query)[:2]
            projected_query, grouped_query_mask, attention_mask = kv_cache.group_query_rows(
                cache_rows, projected_query, query_mask, attention_mask)

        def full():
            mask = self._attention_mask(
                projected_query, key_length, query_mask=grouped_query_mask,
                value_mask=value_mask, key_mask=key_mask, attention_mask=attention_mask,
                use_causal_mask=use_causal_mask, query_offset=query_offset)
            if hook:
                return self._compute_attention(projected_query, projected_key, projected_value,
                                               mask, training, return_attention_scores)
            context, weights = self.attend(projected_query, projected_key, projected_value,
                                           mask, attention_bias, training, heads_first)
            if query_rows is not None:
                context, weights = kv_cache.ungroup_query_rows(query_rows, context, weights)
            return context, weights

        if may_band and not hook and self._can_band(attention_mask, attention_bias,
                                                    use_causal_mask):
            context, weights = self._banded_or_full(
                projected_query, projected_key, projected_value, query_mask, value_mask,
                lambda: full()[0], training), None
        else:
            context, weights = full()
        if self.head_disagreement > 0:
            self.add_loss(self.head_disagreement * self._head_similarity(context, query_mask))
        if gate is not None:
            context = ops.multiply(context, ops.cast(gate, context.dtype))
        return self._output_dense(context), weights  # (B, T, O)

    def _can_band(self, attention_mask, attention_bias, use_causal_mask):
        """Windowed self-attention whose weights nobody asks for runs block by block
        (linear in T); everything else takes the full (T, S) path."""
        return (self._window is not None and None not in self._window
                and attention_mask is None and attention_bias is None and not use_causal_mask)

    def _banded_or_full(self, query, key, value, query_mask, value_mask, full, training):
        """Blocks pay off once a sequence spans several; shorter ones take the full path.
        So do lengths unknown when tracing: a `cond` between the two paths fails XLA's
        conversion of its gradient (measured under `jit_compile=True`, TF 2.21)."""
        length = query.shape[1]
        if length is None or length < BANDED_MIN_BLOCKS * max(*self._window, MIN_BLOCK):
            return full()
        return banded_self_attention(
            query, key, value, query_mask, value_mask, self._window, self._score_layer,
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
        if self._window is not None:
            left, right = self._window
            structural.append(
                mask_lib.window_mask(query_length, key_length, left, right, query_offset)
            )
        per_head = attention_mask is not None and len(attention_mask.shape) == 4
        mask = mask_lib.combine_masks(
            mask_lib.padding_mask(query_mask, value_mask),
            mask_lib.padding_mask(None, key_mask),
            None if per_head else attention_mask,
            *structural,
        )
        if per_head:  # (B|1, N|1, T, S)
            mask = mask_lib.combine_masks(_per_head(mask), attention_mask)
        return mask

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

    def compute_output_spec(self, query, value, key=None, return_attention_scores=False,
                            **kwargs):
        if not getattr(self, "_sequence_attention", len(query.shape) == 3):
            return super().compute_output_spec(
                query, value, key, return_attention_scores=return_attention_scores, **kwargs)
        output = keras.KerasTensor(
            self.compute_output_shape(query.shape, value.shape, None if key is None else key.shape),
            dtype=self.compute_dtype)
        if not return_attention_scores:
            return output
        scores = keras.KerasTensor(
            (query.shape[0], self._num_heads, query.shape[1], value.shape[1]),
            dtype=self.compute_dtype)
        return output, scores

    def get_config(self):
        config = super().get_config()
        config.update(
            window=self.window,
            score=self.score,
            distribution=self.distribution,
            use_rotary=self.use_rotary,
            rotary_max_wavelength=self.rotary_max_wavelength,
            head_disagreement=self.head_disagreement,
        )
        return config


def _not_on_sequence_axis(attention_axes):
    return ValueError("attention_bias and cache act on the sequence axis of (B, T, D) inputs; "
                      f"got attention over axes {attention_axes}")


def _per_head(mask):
    """A bool mask (T, S), (B, T, S) or (B, N, T, S) -> rank 4, broadcasting over the
    axes it lacks; None stays None."""
    if mask is None:
        return None
    for _ in range(4 - len(mask.shape)):
        mask = ops.expand_dims(mask, -3)
    return mask
