"""The KV cache forms decoding uses, behind one protocol.

Every form holds a layer's projected keys and values and offers:

- `write(keys, values, index)`: the cache with new keys and values
  (B, T, N, H) at positions `index` ... `index + T - 1`, in the same form;
- `read()`: `(keys, values)`, heads first (B, N, S, H) when the class's
  `heads_first` is True, else (B, S, N, H);
- `grows`: True when it holds exactly the positions written so far.

The forms:

- `StackedCache`: one (B, 2, S_max, N, H) tensor, KerasHub's layout. Every
  read copies keys and values out of the stack.
- `PairCache`: `(keys, values)` of (B, N, S, H), laid out as attention's
  matmuls read them; preallocated for self-attention, or a static cross-
  attention cache of the encoder memory.
- `GrowingCache`: `(keys, values)` of (B, N, T, H) holding exactly the
  positions decoded so far. Each step's attention, its copy and beam
  search's reordering of the cache touch only that prefix: on average half
  of a full-length buffer. Its shape changes every step, so it suits graph
  mode (`tf.function`, SavedModels); XLA (`jit_compile=True`) needs shapes
  fixed across loop iterations, and so a preallocated form.

Layers take a cache as a plain tensor (stacked), a plain `(keys, values)`
tuple (a pair) or any object with the protocol, and give it back in the
form it came in (`as_cache`, `in_form_of`), so a `tf.while_loop` keeps its
structure. A new form is one class with `write`, `read`, `heads_first` and
`grows`; a namedtuple of tensors passes through loops and `tf.function`s.
A decoder stack's cache is (B, L, 2, S_max, N, H) or a tuple of L per-layer
caches (`per_layer`, `join_layers`).

Example:

>>> cache = GrowingCache.empty(batch_size=2, num_heads=4, head_dim=8)
>>> cache = cache.write(ops.ones((2, 1, 4, 8)), ops.ones((2, 1, 4, 8)), index=0)
>>> tuple(cache.keys.shape)
(2, 4, 1, 8)
"""

import collections

from keras import ops


def heads_first(tensor):
    """(B, S, N, H) -> (B, N, S, H), and back."""
    return ops.transpose(tensor, (0, 2, 1, 3))


class StackedCache(collections.namedtuple("StackedCache", ["entries"])):
    """`entries` (B, 2, S_max, N, H): keys at [:, 0], values at [:, 1]."""

    __slots__ = ()
    heads_first = False
    grows = False

    def write(self, keys, values, index):
        # One write of both: two writes and a stack copied the cache three times.
        new_entries = ops.cast(ops.stack([keys, values], axis=1), self.entries.dtype)
        return StackedCache(ops.slice_update(self.entries, [0, 0, index, 0, 0], new_entries))

    def read(self):
        return self.entries[:, 0], self.entries[:, 1]  # (B, S, N, H) each


class PairCache(collections.namedtuple("PairCache", ["keys", "values"])):
    """`(keys, values)`, each (B, N, S, H)."""

    __slots__ = ()
    heads_first = True
    grows = False

    def write(self, keys, values, index):
        start = [0, 0, index, 0]
        return PairCache(
            ops.slice_update(self.keys, start, ops.cast(heads_first(keys), self.keys.dtype)),
            ops.slice_update(self.values, start, ops.cast(heads_first(values), self.values.dtype)))

    def read(self):
        return self.keys, self.values


class GrowingCache(collections.namedtuple("GrowingCache", ["keys", "values"])):
    """`(keys, values)`, each (B, N, T, H): the positions decoded so far.

    `write` appends after them (its `index` is then the next position).
    `tfformer.decoding`'s loops let a state tensor's empty axis grow, which
    is how `empty` starts this one.
    """

    __slots__ = ()
    heads_first = True
    grows = True

    @classmethod
    def empty(cls, batch_size, num_heads, head_dim, dtype="float32"):
        shape = (batch_size, num_heads, 0, head_dim)
        return cls(ops.zeros(shape, dtype), ops.zeros(shape, dtype))

    def write(self, keys, values, index=None):
        return self.append(heads_first(keys), heads_first(values))

    def append(self, keys, values):
        """The cache with `keys` and `values` (B, N, T, H) added after its positions."""
        return GrowingCache(
            ops.concatenate([self.keys, ops.cast(keys, self.keys.dtype)], axis=2),
            ops.concatenate([self.values, ops.cast(values, self.values.dtype)], axis=2))

    def read(self):
        return self.keys, self.values


def is_cache_object(cache):
    """True for anything with the protocol (`write`, `read`, `heads_first`, `grows`)."""
    return all(hasattr(cache, name) for name in ("write", "read", "heads_first", "grows"))


def as_cache(cache):
    """A tensor, a `(keys, values)` tuple or a cache object -> a cache object."""
    if is_cache_object(cache):
        return cache
    if isinstance(cache, (tuple, list)):
        return PairCache(*cache)
    return StackedCache(cache)


def in_form_of(given, cache):
    """`cache` (a cache object) in the form `given` came in."""
    if is_cache_object(given):
        return cache
    if isinstance(given, (tuple, list)):
        return tuple(cache)
    return cache.entries


def from_projections(keys, values, stacked):
    """Projected keys and values (B, S, N, H) -> a static (B, 2, S, N, H) tensor, or a
    `PairCache` with `stacked=False`."""
    if stacked:
        return ops.stack([keys, values], axis=1)
    return PairCache(heads_first(keys), heads_first(values))


# -- a decoder stack's cache: (B, L, 2, S, N, H) or a tuple of L per-layer caches -----


def per_layer(cache, num_layers):
    """A stack's cache -> L per-layer caches; None -> L Nones."""
    if cache is None:
        return [None] * num_layers
    if isinstance(cache, (tuple, list)):
        return list(cache)
    return [cache[:, layer] for layer in range(num_layers)]


def join_layers(given, layer_caches):
    """Per-layer caches -> the stack's cache, in the form `given` came in."""
    if isinstance(given, (tuple, list)):
        return tuple(layer_caches)
    return ops.stack(layer_caches, axis=1)  # (B, L, 2, S, N, H)


# -- a static cache read by several query rows each ------------------------------------


def group_query_rows(cache_rows, query, query_mask, attention_mask):
    """Queries (B, T, N, H) over a cache of B_c rows, B = G * B_c: each cache row
    serves G consecutive query rows (e.g. beam search's hypotheses of one example),
    which become its G * T query positions, so the cache is read once per row."""
    batch, length = ops.shape(query)[:2]
    query = ops.reshape(query, (cache_rows, -1, *query.shape[2:]))  # (B_c, G*T, N, H)
    if query_mask is not None:
        query_mask = ops.reshape(query_mask, (cache_rows, -1))  # (B_c, G*T)
    if attention_mask is not None:  # (B or 1, T, S) or (T, S)
        keys = ops.shape(attention_mask)[-1]
        attention_mask = ops.reshape(ops.broadcast_to(attention_mask, (batch, length, keys)),
                                     (cache_rows, -1, keys))  # (B_c, G*T, S)
    return query, query_mask, attention_mask


def ungroup_query_rows(rows, context, weights):
    """Undoes `group_query_rows` on the context (B_c, G*T, N, H) -> (B, T, N, H) and the
    weights (B_c, N, G*T, S) -> (B, N, T, S)."""
    batch, length = rows
    context = ops.reshape(context, (batch, length, *context.shape[2:]))  # (B, T, N, H)
    heads, keys = weights.shape[1], ops.shape(weights)[-1]
    weights = ops.reshape(weights, (ops.shape(weights)[0], heads, -1, length, keys))
    weights = ops.reshape(ops.transpose(weights, (0, 2, 1, 3, 4)), (batch, heads, length, keys))
    return context, weights
