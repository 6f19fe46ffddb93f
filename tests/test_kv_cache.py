import collections

import numpy as np
import pytest
from keras import ops

from tfformer import kv_cache
from tfformer.layers import MultiHeadAttention

B, T, N, H = 2, 4, 2, 8


def _steps(seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((B, 1, N, H)).astype("float32"),
             rng.standard_normal((B, 1, N, H)).astype("float32")) for _ in range(T)]


def _written(cache, steps):
    cache = kv_cache.as_cache(cache)
    for index, (keys, values) in enumerate(steps):
        cache = cache.write(keys, values, index)
    return cache


def _keys_heads_first(cache):
    keys, _ = cache.read()
    keys = ops.convert_to_numpy(keys)
    return keys if cache.heads_first else keys.transpose(0, 2, 1, 3)


def test_every_form_holds_the_same_keys_and_values_after_the_same_writes():
    steps = _steps()
    forms = [np.zeros((B, 2, T, N, H), "float32"),
             (np.zeros((B, N, T, H), "float32"), np.zeros((B, N, T, H), "float32")),
             kv_cache.GrowingCache.empty(B, N, H)]
    written = [_written(form, steps) for form in forms]
    expected = np.concatenate([keys for keys, _ in steps], axis=1).transpose(0, 2, 1, 3)
    for cache in written:
        np.testing.assert_array_equal(_keys_heads_first(cache), expected)
    # Each is given back as it came: a tensor, a plain tuple, a GrowingCache.
    assert tuple(kv_cache.in_form_of(forms[0], written[0]).shape) == (B, 2, T, N, H)
    assert type(kv_cache.in_form_of(forms[1], written[1])) is tuple
    assert isinstance(kv_cache.in_form_of(forms[2], written[2]), kv_cache.GrowingCache)


def test_a_stack_cache_splits_into_layers_and_joins_in_its_form():
    stacked = np.arange(B * 3 * 2 * T * N * H, dtype="float32").reshape(B, 3, 2, T, N, H)
    layers = kv_cache.per_layer(stacked, 3)
    np.testing.assert_array_equal(layers[1], stacked[:, 1])
    np.testing.assert_array_equal(kv_cache.join_layers(stacked, layers), stacked)
    pairs = tuple(kv_cache.PairCache(np.zeros(1), np.ones(1)) for _ in range(3))
    assert kv_cache.join_layers(pairs, list(pairs)) == pairs
    assert kv_cache.per_layer(None, 3) == [None, None, None]


class HalfPrecisionCache(collections.namedtuple("HalfPrecisionCache", ["keys", "values"])):
    """A form the library does not ship: keys and values stored in float16."""

    heads_first = True
    grows = False

    def write(self, keys, values, index):
        def put(buffer, new):
            return ops.slice_update(buffer, [0, 0, index, 0],
                                    ops.cast(kv_cache.heads_first(new), "float16"))
        return HalfPrecisionCache(put(self.keys, keys), put(self.values, values))

    def read(self):
        return ops.cast(self.keys, "float32"), ops.cast(self.values, "float32")


@pytest.mark.parametrize("use_rotary", [False, True])
def test_a_new_cache_form_is_one_class_that_attention_decodes_with(use_rotary):
    layer = MultiHeadAttention(num_heads=N, key_dim=H, use_rotary=use_rotary)
    x = np.random.default_rng(1).standard_normal((B, T, 16)).astype("float32")
    full = ops.convert_to_numpy(layer(x, x, use_causal_mask=True))
    cache = HalfPrecisionCache(np.zeros((B, N, T, H), "float16"), np.zeros((B, N, T, H), "float16"))
    steps = []
    for i in range(T):
        out, _, cache = layer.step(x[:, i:i + 1], cache, cache_update_index=i,
                                   use_causal_mask=True)
        steps.append(ops.convert_to_numpy(out))
    assert isinstance(cache, HalfPrecisionCache) and cache.keys.dtype == "float16"
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=2e-2)
    assert not np.allclose(np.concatenate(steps, axis=1), full, atol=1e-7)  # it did store float16
