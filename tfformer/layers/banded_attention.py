"""Truncated self-attention computed block by block: memory and time linear in T.

With a window (left, right), query t only sees keys [t - left, t + right].
Masking a full (T, T) score matrix gives the right answer at quadratic cost.
Here the sequence is cut into blocks of W = max(left, right) positions;
block i's queries can only see keys in blocks i - 1, i and i + 1, so each
block scores W queries against 3W keys, and the same window mask (plus
padding) is applied inside. The allowed keys, and so the softmax, are the
same as in the masked full computation: results agree to float rounding.
"""

from keras import ops

# Blocks hold at least MIN_BLOCK queries (smaller ones were slower), and below
# BANDED_MIN_BLOCKS blocks masking the full (T, T) scores is as fast: benchmarks/
# speed_window.py measured 0.83x at T = 256 and 1.09x at 512 with W = 16, 1.93x at 1024.
BANDED_MIN_BLOCKS = 32
MIN_BLOCK = 16


def _blocks(x, block, count, before, after):
    """(B, T, ...) -> (B, count + before + after, block, ...) with zero blocks padded."""
    length = ops.shape(x)[1]
    padding = [[0, 0], [before * block, (count + after) * block - length]]
    padding += [[0, 0]] * (len(x.shape) - 2)
    x = ops.pad(x, padding)
    return ops.reshape(x, (ops.shape(x)[0], count + before + after, block, *x.shape[2:]))


def _with_neighbours(blocks, count):
    """(B, count + 2, W, ...) -> (B, count, 3W, ...): each block with the ones around it."""
    # ops.slice, not [] indexing: its gradient is a pad, several times faster on CPU
    # than the strided-slice gradient.
    rest = [-1] * (len(blocks.shape) - 2)
    return ops.concatenate(
        [ops.slice(blocks, [0, shift] + [0] * len(rest), [-1, count] + rest)
         for shift in range(3)], axis=2)


def banded_self_attention(query, key, value, query_mask, value_mask, window, score, distribute,
                          dropout):
    """Windowed self-attention, block by block.

    Args:
        query, key, value: (B, T, N, H) projected (and rotated) tensors.
        query_mask, value_mask: (B, T) bool, True for real positions, or None.
        window: (left, right) ints.
        score: (q (B', W, N, H), k (B', 3W, N, H)) -> logits (B', N, W, 3W).
        distribute: (float32 logits, mask (B', 1, W, 3W)) -> weights.
        dropout: weights -> weights (attention dropout).

    Returns:
        context (B, T, N, H); padded queries get zeros, as in the full path.
    """
    left, right = window
    block = max(left, right, MIN_BLOCK)
    batch, length = ops.shape(query)[0], ops.shape(query)[1]
    count = (length + block - 1) // block
    heads, width = query.shape[2], query.shape[3]

    queries = ops.reshape(_blocks(query, block, count, 0, 0), (-1, block, heads, width))
    keys = ops.reshape(_with_neighbours(_blocks(key, block, count, 1, 1), count),
                       (-1, 3 * block, heads, width))
    values = _with_neighbours(_blocks(value, block, count, 1, 1), count)
    values = ops.reshape(values, (-1, 3 * block, heads, value.shape[3]))

    # Key j of a block's 3W sits at offset j - W - q from query q of that block.
    offsets = ops.arange(3 * block)[None, :] - block - ops.arange(block)[:, None]  # (W, 3W)
    band = ops.logical_and(offsets >= -left, offsets <= right)
    def real(mask):
        return ops.ones((batch, length), "bool") if mask is None else ops.cast(mask, "bool")

    key_real = _with_neighbours(_blocks(real(value_mask), block, count, 1, 1), count)  # (B, n, 3W)
    query_real = _blocks(real(query_mask), block, count, 0, 0)  # (B, n, W)
    mask = band[None, None] & key_real[:, :, None, :] & query_real[:, :, :, None]
    mask = ops.reshape(mask, (-1, 1, block, 3 * block))  # (B * n, 1, W, 3W)

    logits = score(queries, keys)  # (B * n, N, W, 3W)
    weights = ops.cast(distribute(ops.cast(logits, "float32"), mask), query.dtype)
    context = ops.einsum("bnts,bsnh->btnh", dropout(weights), values)  # (B * n, W, N, H)
    context = ops.reshape(context, (batch, count * block, heads, value.shape[3]))
    return context[:, :length]
