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
