"""Truncated self-attention computed block by block: memory and time linear in T.

With a window (left, right), query t only sees keys [t - left, t + right].
Masking a full (T, T) score matrix gives the right answer at quadratic cost.
Here the sequence is cut into blocks of W = max(left, right) positions;
block i's queries can only see keys in blocks i - 1, i and i + 1, so each
block scores W queries against 3W keys, and the same window mask (plus
padding) is applied inside. The allowed keys, and so the softmax, are the
same as in the masked full computation: results agree to float rounding.
"""

import tensorflow as tf
from keras import ops

# Blocks hold at least MIN_BLOCK queries (smaller ones were slower), and below
# BANDED_MIN_BLOCKS blocks masking the full (T, T) scores is as fast: benchmarks/
# speed_window.py measured 0.83x at T = 256 and 1.09x at 512 with W = 16, 1.93x at 1024.
BANDED_MIN_BLOCKS = 32
MIN_BLOCK = 16


def _blocks(x, axis, block, count, before, after):
    """Cuts the time `axis` of x into count + before + after blocks of `block` positions,
    zero blocks padded: e.g. (B, N, T, H) with axis 2 -> (B, N, blocks, block, H)."""
    shape = [ops.shape(x)[i] if size is None else size for i, size in enumerate(x.shape)]
    padding = [[0, 0]] * len(x.shape)
    padding[axis] = [before * block, (count + after) * block - shape[axis]]
    x = ops.pad(x, padding)
    return ops.reshape(x, (*shape[:axis], count + before + after, block, *shape[axis + 1:]))


def _with_neighbours(blocks, axis, count):
    """(..., count + 2, W, ...) blocks at `axis` -> (..., count, 3W, ...): each block
    with the ones around it."""
    # ops.slice, not [] indexing: its gradient is a pad, several times faster on CPU
    # than the strided-slice gradient.
    start, size = [0] * len(blocks.shape), [-1] * len(blocks.shape)
    size[axis] = count
    return ops.concatenate(
        [ops.slice(blocks, start[:axis] + [shift] + start[axis + 1:], size)
         for shift in range(3)], axis=axis + 1)


def banded_self_attention(query, key, value, query_mask, value_mask, window, score, weights_of,
                          dropout):
    """Windowed self-attention, block by block.

    Args:
        query, key, value: (B, T, N, H) projected (and rotated) tensors.
        query_mask, value_mask: (B, T) bool, True for real positions, or None.
        window: (left, right) ints.
        score: an `AttentionScore`; its `blocks` scores heads-first blocks,
            (B, N, n, W, H) queries against (B, N, n, 3W, H) keys -> (B, N, n, W, 3W).
        weights_of: (logits, mask (B, 1, n, W, 3W)) -> weights in the query's dtype.
        dropout: weights -> weights (attention dropout).

    Returns:
        context (B, T, N, H); padded queries get zeros, as in the full path.
    """
    left, right = window
    block = max(left, right, MIN_BLOCK)
    batch, length = ops.shape(query)[0], ops.shape(query)[1]
    count = (length + block - 1) // block

    # Heads first before the blocks are cut, so that the keys and values, three times
    # larger once joined with their neighbours, are never transposed.
    def heads_first(x):
        return ops.transpose(x, (0, 2, 1, 3))  # (B, N, T, H)

    queries = _blocks(heads_first(query), 2, block, count, 0, 0)  # (B, N, n, W, H)
    keys = _with_neighbours(_blocks(heads_first(key), 2, block, count, 1, 1), 2, count)
    values = _with_neighbours(_blocks(heads_first(value), 2, block, count, 1, 1), 2, count)

    # Key j of a block's 3W sits at offset j - W - q from query q of that block.
    offsets = ops.arange(3 * block)[None, :] - block - ops.arange(block)[:, None]  # (W, 3W)
    band = ops.logical_and(offsets >= -left, offsets <= right)

    def real(mask):
        return ops.ones((batch, length), "bool") if mask is None else ops.cast(mask, "bool")

    key_real = _with_neighbours(_blocks(real(value_mask), 1, block, count, 1, 1), 1, count)
    query_real = _blocks(real(query_mask), 1, block, count, 0, 0)  # (B, n, W)
    mask = band[None, None] & key_real[:, :, None, :] & query_real[:, :, :, None]
    mask = mask[:, None]  # (B, 1, n, W, 3W)

    logits = score.blocks(queries, keys)  # (B, N, n, W, 3W)
    weights = weights_of(logits, mask)
    context = tf.linalg.matmul(dropout(weights), values)  # (B, N, n, W, H), as in blocks()
    context = ops.reshape(context, (batch, value.shape[2], count * block, value.shape[3]))
    return ops.transpose(context[:, :, :length], (0, 2, 1, 3))  # (B, T, N, H)
