"""Pure attention-mask builders.

Every builder returns a bool tensor of shape (B, T, S), where True means the
query position may attend to the key position. Builders that do not depend on
the batch return B = 1, which broadcasts. Masks combine by AND
(`combine_masks`), so padding, causal, truncated-window and graph masks compose
freely. `length_mask` gives the per-position (B, L) validity mask that padding
masks are made from.

Example:

>>> mask = combine_masks(
...     causal_mask(4, 4), window_mask(4, 4, left=1, right=0))
>>> tuple(mask.shape)
(1, 4, 4)
"""

from keras import ops

# Keras 3 has no public accessor for the implicit mask a tensor carries; these
# two are what its own layers (MultiHeadAttention included) use.
from keras.src.backend import get_keras_mask as _get_keras_mask
from keras.src.backend import set_keras_mask as _set_keras_mask


def keras_mask(x):
    """The implicit Keras mask carried by `x` ((B, T) bool), or None."""
    return _get_keras_mask(x)


def set_keras_mask(x, mask):
    """Attaches `mask` ((B, T) bool, or None for no mask) to `x` as its implicit Keras mask."""
    if mask is not None or _get_keras_mask(x) is not None:
        _set_keras_mask(x, mask)


def clear_keras_mask(x):
    """Removes the implicit Keras mask from `x` once a layer has consumed it."""
    if _get_keras_mask(x) is not None:
        _set_keras_mask(x, None)


def _positions(length, offset=0):
    return ops.arange(length, dtype="int32") + ops.cast(offset, "int32")


def length_mask(lengths, max_length):
    """(B,) valid lengths -> (B, max_length) bool, True at the first lengths[b] positions."""
    return ops.arange(max_length, dtype="int32")[None, :] < ops.cast(lengths, "int32")[:, None]


def padding_mask(query_mask=None, key_mask=None):
    """(B, T, S) mask from per-position validity masks.

    Args:
        query_mask: optional (B, T) bool/int, True for real query positions.
        key_mask: optional (B, S) bool/int, True for real key positions.

    Returns:
        (B, T, 1), (B, 1, S) or (B, T, S) bool, or None if both are None.
    """
    mask = None
    if query_mask is not None:
        mask = ops.expand_dims(ops.cast(query_mask, "bool"), -1)  # (B, T, 1)
    if key_mask is not None:
        key = ops.expand_dims(ops.cast(key_mask, "bool"), -2)  # (B, 1, S)
        mask = key if mask is None else ops.logical_and(mask, key)
    return mask


def causal_mask(query_length, key_length=None, query_offset=0):
    """(1, T, S) mask: query i (at absolute position i + offset) sees keys <= it.

    Args:
        query_length: T.
        key_length: S; defaults to T.
        query_offset: absolute position of the first query (int or scalar
            tensor), used with a KV cache where queries start mid-sequence.
    """
    key_length = query_length if key_length is None else key_length
    rows = ops.expand_dims(_positions(query_length, query_offset), -1)
    cols = ops.expand_dims(_positions(key_length), 0)
    return ops.expand_dims(ops.greater_equal(rows, cols), 0)  # (1, T, S)


def window_mask(query_length, key_length=None, left=None, right=None, query_offset=0):
    """(1, T, S) truncated-attention mask: query i sees keys in [i-left, i+right].

    Args:
        query_length: T.
        key_length: S; defaults to T.
        left: keys visible to the left; None means unbounded.
        right: keys visible to the right; None means unbounded.
        query_offset: absolute position of the first query.
    """
    validate_window((left, right))
    key_length = query_length if key_length is None else key_length
    rows = ops.expand_dims(_positions(query_length, query_offset), -1)  # (T, 1)
    cols = ops.expand_dims(_positions(key_length), 0)  # (1, S)
    distance = cols - rows  # (T, S): key position relative to query
    mask = ops.ones_like(distance, dtype="bool")
    if left is not None:
        mask = ops.logical_and(mask, ops.greater_equal(distance, -left))
    if right is not None:
        mask = ops.logical_and(mask, ops.less_equal(distance, right))
    return ops.expand_dims(mask, 0)  # (1, T, S)


def adjacency_mask(adjacency):
    """(B, N, N) mask from an adjacency matrix for graph attention.

    Args:
        adjacency: (N, N) or (B, N, N), nonzero where node i may attend to j.
    """
    adjacency = ops.convert_to_tensor(adjacency)
    if len(adjacency.shape) not in (2, 3):
        raise ValueError(
            f"adjacency must have shape (N, N) or (B, N, N), got {adjacency.shape}"
        )
    mask = ops.not_equal(adjacency, ops.zeros_like(adjacency))
    if len(mask.shape) == 2:
        mask = ops.expand_dims(mask, 0)
    return mask


def combine_masks(*masks):
    """AND of all masks that are not None (broadcasting), or None."""
    result = None
    for mask in masks:
        if mask is None:
            continue
        mask = ops.cast(mask, "bool")
        result = mask if result is None else ops.logical_and(result, mask)
    return result


def validate_window(window):
    """Checks a `(left, right)` window; returns it as a tuple or None."""
    if window is None:
        return None
    if not isinstance(window, (tuple, list)) or len(window) != 2:
        raise ValueError(f"window must be a (left, right) pair or None, got window={window!r}")
    for side, value in zip(("left", "right"), window):
        if value is not None and (not isinstance(value, int) or value < 0):
            raise ValueError(
                f"window {side} side must be a non-negative int or None, got {value!r} "
                f"in window={tuple(window)!r}"
            )
    return tuple(window)
