import keras
from keras import ops

from tfformer.layers.multi_head_attention import MultiHeadAttention


@keras.saving.register_keras_serializable(package="tfformer")
class LinearAttention(MultiHeadAttention):
    """Linear attention (Katharopoulos et al., 2020): softmax replaced by a
    kernel feature map phi(x) = elu(x) + 1, so attention costs O(T H^2)
    instead of O(T S H).

    out_i = phi(q_i) . sum_j phi(k_j) v_j^T / (phi(q_i) . sum_j phi(k_j)),
    the sums over visible keys: all non-padded keys, or j <= i with
    `use_causal_mask=True` (a running sum, the paper's causal form).
    Same projections and weight layout as `MultiHeadAttention`.

    Args:
        num_heads, key_dim, value_dim, dropout, use_bias, output_shape,
        kernel_initializer, bias_initializer: as in `MultiHeadAttention`
        (`dropout` is accepted for layout parity; there are no weights to
        drop). Windows, scores, distributions, rotary and caches are not
        supported.

    Call arguments:
        query (B, T, D), value (B, S, D), key; value_mask (B, S);
        use_causal_mask. An explicit `attention_mask` is refused: the
        kernel form cannot express arbitrary masks.

    Returns:
        (B, T, O).

    Example:

    >>> import numpy as np
    >>> x = np.random.rand(2, 6, 8).astype("float32")
    >>> tuple(LinearAttention(num_heads=2, key_dim=4)(x, x, use_causal_mask=True).shape)
    (2, 6, 8)
    """

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True,
                 output_shape=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        unsupported = {"window": None, "score": "scaled_dot", "distribution": "softmax",
                       "use_rotary": False, "head_disagreement": 0.0, "sliding_window": None,
                       "use_gate": False, "attention_axes": None}
        for name, off in unsupported.items():
            given = kwargs.get(name, off)
            if given not in (off, 0.0) and not (name == "attention_axes" and given in (1, (1,), [1])):
                raise ValueError(f"LinearAttention does not support {name}={given!r}")
            kwargs.pop(name, None)
        kwargs.pop("rotary_max_wavelength", None)
        super().__init__(
            num_heads, key_dim, value_dim=value_dim, dropout=dropout, use_bias=use_bias,
            output_shape=output_shape, kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer, **kwargs)

    def build(self, query_shape, value_shape, key_shape=None):
        if len(query_shape) != 3:
            raise ValueError(f"LinearAttention attends over the sequence of (B, T, D) inputs; "
                             f"got a query of shape {tuple(query_shape)}")
        super().build(query_shape, value_shape, key_shape)

    def call(self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
             attention_mask=None, return_attention_scores=False, training=None,
             use_causal_mask=False):
        if attention_mask is not None:
            raise ValueError(
                "LinearAttention accepts padding (Keras) masks and use_causal_mask, "
                "not an explicit attention_mask")
        if return_attention_scores:
            raise ValueError("LinearAttention never forms the (T, S) weights; "
                             "return_attention_scores is not available")
        key_mask = key_mask if key is not None and key is not value else None
        projected_query = self._query_dense(query)  # (B, T, N, H)
        projected_key, projected_value = self.project_key_value(value, key)
        phi_q = ops.cast(ops.elu(projected_query), "float32") + 1.0
        phi_k = ops.cast(ops.elu(projected_key), "float32") + 1.0  # (B, S, N, H)
        v = ops.cast(projected_value, "float32")  # (B, S, N, H_v)
        for mask in (value_mask, key_mask):
            if mask is not None:
                phi_k = phi_k * ops.cast(mask, "float32")[:, :, None, None]
        if use_causal_mask:
            # Running sums over keys j <= i: (B, T, N, H, H_v) and (B, T, N, H).
            kv = ops.cumsum(ops.einsum("bsnh,bsnv->bsnhv", phi_k, v), axis=1)
            normaliser = ops.cumsum(phi_k, axis=1)
            numerator = ops.einsum("btnh,btnhv->btnv", phi_q, kv)
            denominator = ops.einsum("btnh,btnh->btn", phi_q, normaliser)
        else:
            kv = ops.einsum("bsnh,bsnv->bnhv", phi_k, v)  # (B, N, H, H_v)
            numerator = ops.einsum("btnh,bnhv->btnv", phi_q, kv)
            denominator = ops.einsum("btnh,bnh->btn", phi_q, ops.sum(phi_k, axis=1))
        context = numerator / ops.maximum(denominator, 1e-6)[..., None]  # (B, T, N, H_v)
        if query_mask is not None:
            context = context * ops.cast(query_mask, "float32")[:, :, None, None]
        return self._output_dense(ops.cast(context, self.compute_dtype))

    def get_config(self):
        config = super().get_config()
        for name in ("window", "score", "distribution", "use_rotary", "rotary_max_wavelength",
                     "head_disagreement", "attention_axes", "sliding_window", "use_gate"):
            config.pop(name)
        return config
