"""A self-attention KV cache that grows by each decoding step's keys and values.

A preallocated cache holds (B, N, T_max, H) slots: every step writes its
keys and values at its index, which copies the whole buffer, and attention
reads all T_max slots with the unwritten ones masked. A `GrowingCache`
holds exactly the positions decoded so far, so each step's attention, its
copy and beam search's reordering of the cache touch only that prefix: on
average half of a full-length buffer. Its shape changes every step, so it
suits graph mode (`tf.function`, SavedModels); XLA (`jit_compile=True`)
needs shapes fixed across loop iterations, and so the preallocated cache.

Example:

>>> cache = GrowingCache.empty(batch_size=2, num_heads=4, head_dim=8)
>>> cache = cache.append(ops.ones((2, 4, 1, 8)), ops.ones((2, 4, 1, 8)))
>>> tuple(cache.keys.shape)
(2, 4, 1, 8)
"""

import collections

from keras import ops


class GrowingCache(collections.namedtuple("GrowingCache", ["keys", "values"])):
    """`(keys, values)`, each (B, N, T, H): the positions decoded so far.

    A `MultiHeadAttention` given one as `cache` (with `cache_update_index`)
    appends the step's keys and values instead of writing them at the
    index. `tfformer.decoding`'s loops let a state tensor's empty axis grow,
    which is how `empty` starts this one.
    """

    __slots__ = ()

    @classmethod
    def empty(cls, batch_size, num_heads, head_dim, dtype="float32"):
        shape = (batch_size, num_heads, 0, head_dim)
        return cls(ops.zeros(shape, dtype), ops.zeros(shape, dtype))

    def append(self, keys, values):
        """The cache with `keys` and `values` (B, N, T, H) added after its positions."""
        return GrowingCache(
            ops.concatenate([self.keys, ops.cast(keys, self.keys.dtype)], axis=2),
            ops.concatenate([self.values, ops.cast(values, self.values.dtype)], axis=2))


# -- the cache layouts `MultiHeadAttention` takes -------------------------------------
# A stacked cache is one (B, 2, S, N, H) tensor; a pair is `(keys, values)` of
# (B, N, S, H), or a `GrowingCache`.


def is_stacked(cache):
    """A (B, 2, S, N, H) tensor, not a (keys, values) pair."""
    return not isinstance(cache, (tuple, list))


def heads_first(tensor):
    """(B, S, N, H) -> (B, N, S, H)."""
    return ops.transpose(tensor, (0, 2, 1, 3))


def write(cache, new_key, new_value, index):
    """`cache` with the new keys and values (B, T, N, H) written at position `index`
    (appended to a `GrowingCache`), in the form it was given."""
    if is_stacked(cache):  # one write of both (two writes and a stack copied the cache three times)
        new_entries = ops.cast(ops.stack([new_key, new_value], axis=1), cache.dtype)
        return ops.slice_update(cache, [0, 0, index, 0, 0], new_entries)
    if isinstance(cache, GrowingCache):
        return cache.append(heads_first(new_key), heads_first(new_value))
    keys, values = cache
    start = [0, 0, index, 0]
    return (ops.slice_update(keys, start, ops.cast(heads_first(new_key), keys.dtype)),
            ops.slice_update(values, start, ops.cast(heads_first(new_value), values.dtype)))


def read(cache):
    """Keys and values: (B, S, N, H) each from a stacked cache, (B, N, S, H) from a pair."""
    return (cache[:, 0], cache[:, 1]) if is_stacked(cache) else tuple(cache)


def group_query_rows(cache_rows, query, query_mask, attention_mask):
    """Queries (B, T, N, H) over a cache of B_c rows, B = G * B_c: each cache row
    serves G consecutive query rows (e.g. beam search's hypotheses of one example),
    which become its G * T query positions, so the cache is read once per row."""
    batch, length = ops.shape(query)[:2]
    query = ops.reshape(query, (cache_rows, -1, *query.shape[2:]))
    if query_mask is not None:
        query_mask = ops.reshape(query_mask, (cache_rows, -1))
    if attention_mask is not None:  # (B or 1, T, S) or (T, S)
        keys = ops.shape(attention_mask)[-1]
        attention_mask = ops.reshape(ops.broadcast_to(attention_mask, (batch, length, keys)),
                                     (cache_rows, -1, keys))
    return query, query_mask, attention_mask


def ungroup_query_rows(rows, context, weights):
    """Undoes `group_query_rows` on the context (B_c, G*T, N, H) -> (B, T, N, H) and the
    weights (B_c, N, G*T, S) -> (B, N, T, S)."""
    batch, length = rows
    context = ops.reshape(context, (batch, length, *context.shape[2:]))
    heads, keys = weights.shape[1], ops.shape(weights)[-1]
    weights = ops.reshape(weights, (ops.shape(weights)[0], heads, -1, length, keys))
    weights = ops.reshape(ops.transpose(weights, (0, 2, 1, 3, 4)), (batch, heads, length, keys))
    return context, weights
