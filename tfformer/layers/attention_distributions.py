"""Attention distributions: logits (B, N, T, S) + bool mask -> weights.

`MultiHeadAttention(distribution=name)` looks the name up in
`DISTRIBUTIONS`. Every function returns exact zeros at masked keys, and a
query row with no visible key returns all zeros (never NaN). Inputs are
float32; the layer casts around the call so half-precision policies stay
stable.
"""

from keras import ops

# Masked logits are pushed this far down before normalising; the result is
# multiplied by the mask afterwards, so the value only needs to be finite.
_MASKED_LOGIT = -1e9


def _mask_logits(logits, mask):
    if mask is None:
        return logits
    return ops.where(mask, logits, ops.full_like(logits, _MASKED_LOGIT))


def _zero_masked(weights, mask):
    if mask is None:
        return weights
    return weights * ops.cast(mask, weights.dtype)


def softmax(logits, mask=None):
    """Softmax over the last axis, zero at masked keys and in empty rows."""
    return _zero_masked(ops.softmax(_mask_logits(logits, mask), axis=-1), mask)


def sparsemax(logits, mask=None):
    """Sparsemax (Martins & Astudillo, 2016): a projection onto the simplex.

    Written here because `keras.ops.sparsemax` (Keras 3.15, TF backend)
    computes the threshold from the sum of all supported cumulative sums
    instead of the k-th one, so its rows do not sum to 1.
    """
    z = _mask_logits(logits, mask)
    z_sorted = ops.flip(ops.sort(z, axis=-1), axis=-1)  # descending
    cumulative = ops.cumsum(z_sorted, axis=-1)
    k = ops.arange(1, ops.shape(z)[-1] + 1, dtype=z.dtype)
    support = ops.cast(1.0 + k * z_sorted > cumulative, z.dtype)
    support_size = ops.maximum(ops.sum(support, axis=-1, keepdims=True), 1.0)
    support_sum = ops.sum(support * z_sorted, axis=-1, keepdims=True)
    threshold = (support_sum - 1.0) / support_size
    return _zero_masked(ops.maximum(z - threshold, 0.0), mask)


DISTRIBUTIONS = {"softmax": softmax, "sparsemax": sparsemax}


def get_distribution(name):
    if name not in DISTRIBUTIONS:
        raise ValueError(
            f"Unknown attention distribution {name!r}; expected one of {sorted(DISTRIBUTIONS)}"
        )
    return DISTRIBUTIONS[name]
