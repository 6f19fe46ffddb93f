import keras
import numpy as np
import pytest
import tensorflow as tf

from tfformer import masks
from tfformer.kv_cache import GrowingCache
from tfformer.layers import MultiHeadAttention, RelativePositionBias

B, T, S, D = 3, 7, 5, 16


def _x(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _transferred(keras_layer, query, value, **kwargs):
    ours = MultiHeadAttention(**kwargs)
    ours(query, value)
    ours.set_weights(keras_layer.get_weights())
    return ours


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_heads": 2, "key_dim": 8},
        {"num_heads": 4, "key_dim": 4, "value_dim": 6, "output_shape": 10},
        {"num_heads": 1, "key_dim": 16, "use_bias": False},
    ],
)
def test_matches_keras_after_set_weights(kwargs):
    query, value = _x(B, T, D), _x(B, S, D, seed=1)
    theirs = keras.layers.MultiHeadAttention(**kwargs)
    expected, expected_scores = theirs(query, value, return_attention_scores=True)
    ours = _transferred(theirs, query, value, **kwargs)
    output, scores = ours(query, value, return_attention_scores=True)
    np.testing.assert_allclose(output, expected, atol=1e-5)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)
    causal = ours(query, query, use_causal_mask=True)
    np.testing.assert_allclose(causal, theirs(query, query, use_causal_mask=True), atol=1e-5)


def test_matches_keras_with_masks_on_unpadded_rows():
    query, value = _x(B, T, D), _x(B, S, D, seed=1)
    query_mask = np.ones((B, T), bool)
    query_mask[0, -2:] = False
    value_mask = np.ones((B, S), bool)
    value_mask[1, -3:] = False
    theirs = keras.layers.MultiHeadAttention(num_heads=2, key_dim=8)
    theirs(query, value)
    ours = _transferred(theirs, query, value, num_heads=2, key_dim=8)
    attention_mask = _x(B, T, S, seed=3) > -1.0
    call = dict(query_mask=query_mask, value_mask=value_mask, attention_mask=attention_mask)
    expected = keras.ops.convert_to_numpy(theirs(query, value, **call))
    output = keras.ops.convert_to_numpy(ours(query, value, **call))
    np.testing.assert_allclose(output[query_mask], expected[query_mask], atol=1e-5)


def test_causal_mask_makes_earlier_outputs_independent_of_future_tokens():
    layer = MultiHeadAttention(num_heads=2, key_dim=8)
    x = _x(B, T, D)
    changed = x.copy()
    changed[:, 4:] = _x(B, T - 4, D, seed=9)
    before = keras.ops.convert_to_numpy(layer(x, x, use_causal_mask=True))
    after = keras.ops.convert_to_numpy(layer(changed, changed, use_causal_mask=True))
    np.testing.assert_array_equal(before[:, :4], after[:, :4])
    assert not np.allclose(before[:, 4:], after[:, 4:])


@pytest.mark.parametrize("window", [(2, 1), (0, 0), (None, 1), (3, None)])
def test_window_hides_keys_outside_it(window):
    left, right = window
    layer = MultiHeadAttention(num_heads=2, key_dim=8, window=window)
    x = _x(1, 12, D)
    reference = keras.ops.convert_to_numpy(layer(x, x))
    key = 6
    changed = x.copy()
    changed[:, key] += 1.0
    output = keras.ops.convert_to_numpy(layer(changed, changed))
    for i in range(12):
        sees_key = (left is None or key >= i - left) and (right is None or key <= i + right)
        if sees_key:
            assert not np.allclose(output[0, i], reference[0, i]), i
        else:
            np.testing.assert_array_equal(output[0, i], reference[0, i])


def test_changing_padded_keys_changes_nothing():
    layer = MultiHeadAttention(num_heads=2, key_dim=8)
    query, value = _x(B, T, D), _x(B, S, D, seed=1)
    value_mask = np.ones((B, S), bool)
    value_mask[:, 3:] = False
    changed = value.copy()
    changed[:, 3:] = 100.0
    before = layer(query, value, value_mask=value_mask)
    after = layer(query, changed, value_mask=value_mask)
    np.testing.assert_array_equal(before, after)


def test_keras_mask_path_equals_explicit_mask_path():
    ids = np.array([[3, 4, 5, 0, 0], [6, 7, 8, 9, 1]])
    embedding = keras.layers.Embedding(10, D, mask_zero=True)
    layer = MultiHeadAttention(num_heads=2, key_dim=8)
    implicit = layer(embedding(ids), embedding(ids))
    padding = ids != 0
    x = keras.ops.convert_to_numpy(embedding(ids))
    explicit = layer(x, x, attention_mask=masks.padding_mask(padding, padding))
    np.testing.assert_allclose(implicit, explicit, atol=1e-6)
    # And the functional API carries the mask into the layer the same way.
    tokens = keras.Input((None,), dtype="int32")
    embedded = embedding(tokens)
    model = keras.Model(tokens, layer(embedded, embedded))
    np.testing.assert_allclose(model(ids), explicit, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_query_with_nothing_to_attend_gets_zero_weights(dtype):
    layer = MultiHeadAttention(num_heads=2, key_dim=8, window=(1, 0), dtype=dtype)
    x = _x(2, 6, D)
    key_mask = np.ones((2, 6), bool)
    key_mask[0, :3] = False  # rows 0 and 1 of batch 0 see only padded keys
    output, scores = layer(x, x, value_mask=key_mask, return_attention_scores=True)
    scores = keras.ops.convert_to_numpy(keras.ops.cast(scores, "float32"))
    output = keras.ops.convert_to_numpy(keras.ops.cast(output, "float32"))
    assert np.all(np.isfinite(output)) and np.all(np.isfinite(scores))
    np.testing.assert_array_equal(scores[0, :, :2], 0.0)
    # With no weights, the output is the output projection's bias alone.
    bias = keras.ops.convert_to_numpy(layer._output_dense.bias)
    np.testing.assert_allclose(output[0, :2], np.broadcast_to(bias, (2, D)), atol=1e-6)


def test_sparsemax_rows_sum_to_one_with_exact_zeros():
    layer = MultiHeadAttention(num_heads=4, key_dim=8, distribution="sparsemax")
    x = _x(B, T, D) * 4.0
    _, scores = layer(x, x, return_attention_scores=True)
    scores = keras.ops.convert_to_numpy(scores)
    np.testing.assert_allclose(scores.sum(-1), 1.0, atol=1e-5)
    assert (scores == 0.0).sum() > 0 and (scores >= 0).all()


def test_sparsemax_matches_its_definition():
    from tfformer.layers.attention_distributions import sparsemax

    z = np.array([[1.0, 0.8, 0.1, -1.0], [0.5, 0.5, 0.5, 0.5]], "float32")
    np.testing.assert_allclose(sparsemax(z), [[0.6, 0.4, 0, 0], [0.25] * 4], atol=1e-6)


def test_scores_are_consistent():
    query, value = _x(B, T, D), _x(B, S, D, seed=1)
    base = MultiHeadAttention(num_heads=2, key_dim=8)
    base(query, value)

    def scores_of(name):
        layer = MultiHeadAttention(num_heads=2, key_dim=8, score=name)
        layer(query, value)
        layer.set_weights(base.get_weights()[:8] + layer.get_weights()[8:])
        return keras.ops.convert_to_numpy(layer(query, value, return_attention_scores=True)[1])

    scaled = scores_of("scaled_dot")
    # "general" starts at W = I, so it equals scaled dot-product attention.
    np.testing.assert_allclose(scores_of("general"), scaled, atol=1e-6)
    # "dot" has no 1/sqrt(H): its logits are sqrt(8) times larger, so sharper.
    dot = scores_of("dot")
    assert dot.max(-1).mean() > scaled.max(-1).mean()
    np.testing.assert_allclose(scores_of("additive").sum(-1), 1.0, atol=1e-5)


def test_constant_attention_bias_changes_nothing_but_relative_bias_does():
    layer = MultiHeadAttention(num_heads=2, key_dim=8)
    x = _x(B, T, D)
    plain = layer(x, x)
    np.testing.assert_allclose(layer(x, x, attention_bias=np.full((1, 2, T, T), 3.0)), plain,
                               atol=1e-5)
    relative = RelativePositionBias(num_heads=2, initializer="random_normal")
    assert not np.allclose(layer(x, x, attention_bias=relative(x)), plain)


@pytest.mark.parametrize("growing", [False, True])
@pytest.mark.parametrize("use_rotary", [False, True])
@pytest.mark.parametrize("window", [None, (3, 0)])
def test_cached_step_by_step_equals_one_full_pass(use_rotary, window, growing):
    layer = MultiHeadAttention(num_heads=2, key_dim=8, use_rotary=use_rotary, window=window)
    x = _x(B, T, D)
    full = keras.ops.convert_to_numpy(layer(x, x, use_causal_mask=True))
    empty = GrowingCache.empty(B, 2, 8) if growing else np.zeros((B, 2, T, 2, 8), "float32")
    steps, cache = _decode_step_by_step(layer, x, empty)
    np.testing.assert_allclose(steps, full, atol=1e-5)
    if growing:  # it holds exactly the positions decoded, as the preallocated cache does
        assert isinstance(cache, GrowingCache) and cache.keys.shape == (B, 2, T, 8)
        preallocated = _decode_step_by_step(layer, x, np.zeros((B, 2, T, 2, 8), "float32"))[1]
        np.testing.assert_allclose(cache.keys, np.transpose(preallocated[:, 0], (0, 2, 1, 3)),
                                   atol=1e-6)
        np.testing.assert_allclose(cache.values, np.transpose(preallocated[:, 1], (0, 2, 1, 3)),
                                   atol=1e-6)


def _decode_step_by_step(layer, x, cache):
    """Causal self-attention over `x`, one position per call -> (outputs, final cache)."""
    steps = []
    for i in range(x.shape[1]):
        out, _, cache = layer.step(x[:, i:i + 1], cache, cache_update_index=i,
                                   use_causal_mask=True)
        steps.append(keras.ops.convert_to_numpy(out))
    return np.concatenate(steps, axis=1), cache


@pytest.mark.parametrize("score", ["scaled_dot", "dot", "additive"])
def test_per_layer_cache_of_heads_first_pairs_equals_one_full_pass(score):
    # Dot-product scores read (B, N, S, H) keys as they are; others transpose them.
    layer = MultiHeadAttention(num_heads=2, key_dim=8, score=score, use_rotary=True)
    x, memory = _x(B, T, D), _x(B, S, D, seed=1)
    full = keras.ops.convert_to_numpy(layer(x, x, use_causal_mask=True))
    empty = (np.zeros((B, 2, T, 8), "float32"), np.zeros((B, 2, T, 8), "float32"))
    steps, cache = _decode_step_by_step(layer, x, empty)
    np.testing.assert_allclose(steps, full, atol=1e-5)
    assert isinstance(cache, tuple) and cache[0].shape == (B, 2, T, 8)
    cross = layer.precompute_cache(memory, stacked=False)
    cached, scores = layer.step(x, cross)[:2]
    direct, direct_scores = layer(x, memory, return_attention_scores=True)
    np.testing.assert_allclose(cached, direct, atol=1e-5)
    np.testing.assert_allclose(scores, direct_scores, atol=1e-6)


def test_cache_drives_a_compiled_while_loop():
    layer = MultiHeadAttention(num_heads=2, key_dim=8)
    x = tf.constant(_x(B, T, D))
    full = layer(x, x, use_causal_mask=True)

    @tf.function(jit_compile=True)
    def decode(x):
        def body(i, cache, outputs):
            step = tf.expand_dims(tf.gather(x, i, axis=1), 1)
            out, _, cache = layer.step(step, cache, cache_update_index=i, use_causal_mask=True)
            return i + 1, cache, outputs.write(i, out[:, 0])

        cache = tf.zeros((B, 2, T, 2, 8))
        outputs = tf.TensorArray(tf.float32, size=T)
        _, _, outputs = tf.while_loop(lambda i, *_: i < T, body, (0, cache, outputs))
        return tf.transpose(outputs.stack(), (1, 0, 2))

    np.testing.assert_allclose(decode(x), full, atol=1e-5)


def test_static_cross_attention_cache_equals_direct_attention():
    layer = MultiHeadAttention(num_heads=2, key_dim=8)
    query, memory = _x(B, T, D), _x(B, S, D, seed=1)
    direct = layer(query, memory)
    cache = layer.precompute_cache(memory)
    cached, _, _ = layer.step(query, cache)
    np.testing.assert_allclose(cached, direct, atol=1e-6)


@pytest.mark.parametrize("stacked", [True, False])
def test_a_cross_cache_row_serves_consecutive_query_rows(stacked):
    """Beam search's hypotheses (G per example) read their example's memory once: a cache
    of B rows with B * G query rows equals the cache repeated G times."""
    groups = 3
    layer = MultiHeadAttention(num_heads=2, key_dim=8)
    query, memory = _x(B * groups, T, D), _x(B, S, D, seed=1)
    memory_mask = np.arange(S)[None] < np.array([[3], [S], [4]])
    query_mask = np.random.default_rng(2).random((B * groups, T)) > 0.3
    layer(query, np.repeat(memory, groups, 0))  # builds it
    cache = layer.precompute_cache(memory, stacked=stacked)
    shared, shared_scores, _ = layer.step(query, cache, value_mask=memory_mask,
                                          query_mask=query_mask)
    tiled, tiled_scores = layer(query, np.repeat(memory, groups, 0),
                                value_mask=np.repeat(memory_mask, groups, 0),
                                query_mask=query_mask, return_attention_scores=True)
    np.testing.assert_allclose(shared, tiled, atol=1e-5)
    np.testing.assert_allclose(shared_scores, tiled_scores, atol=1e-6)
    assert shared.shape == (B * groups, T, D) and shared_scores.shape == (B * groups, 2, T, S)
    # An attention mask per query row, or one for all rows, applies to each row as given.
    for attention_mask in (np.random.default_rng(3).random((B * groups, T, S)) > 0.2,
                           masks.causal_mask(T, S)):
        shared = layer.step(query, cache, value_mask=memory_mask,
                            attention_mask=attention_mask)[0]
        tiled = layer(query, np.repeat(memory, groups, 0), attention_mask=attention_mask,
                      value_mask=np.repeat(memory_mask, groups, 0))
        np.testing.assert_allclose(shared, tiled, atol=1e-5)


def test_head_disagreement_adds_the_mean_head_similarity():
    x = _x(B, T, D)
    layer = MultiHeadAttention(num_heads=2, key_dim=8, head_disagreement=0.5)
    layer(x, x)
    loss = float(keras.ops.convert_to_numpy(layer.losses[-1]))
    assert -0.5 <= loss <= 0.5
    # Make both heads identical: their outputs coincide and the similarity is 1.
    weights = layer.get_weights()
    for i in range(0, 6, 2):
        weights[i][:, 1] = weights[i][:, 0]
        weights[i + 1][1] = weights[i + 1][0]
    layer.set_weights(weights)
    layer(x, x)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.losses[-1]), 0.5, atol=1e-4)
    plain = MultiHeadAttention(num_heads=2, key_dim=8)
    plain(x, x)
    assert not plain.losses


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_heads": 0, "key_dim": 8}, "num_heads=0"),
        ({"num_heads": 2, "key_dim": 0}, "key_dim=0"),
        ({"num_heads": 2, "key_dim": 8, "window": (-1, 0)}, "window left side"),
        ({"num_heads": 2, "key_dim": 8, "window": (0, -2)}, "window right side"),
        ({"num_heads": 2, "key_dim": 8, "score": "cosine"}, "Unknown attention score 'cosine'"),
        ({"num_heads": 2, "key_dim": 8, "distribution": "entmax"}, "'entmax'"),
        ({"num_heads": 2, "key_dim": 8, "dropout": 1.5}, "dropout=1.5"),
        ({"num_heads": 2, "key_dim": 7, "use_rotary": True}, "even key_dim"),
    ],
)
def test_bad_configuration_fails_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MultiHeadAttention(**kwargs)


def test_arguments_beyond_keras_name_the_axes_they_need():
    layer = MultiHeadAttention(num_heads=2, key_dim=8, window=(2, 0))
    with pytest.raises(ValueError, match=r"window=\(2, 0\) act on the sequence axis"):
        layer(_x(2, 3, 4, 16), _x(2, 3, 4, 16))
    layer = MultiHeadAttention(num_heads=2, key_dim=8, attention_axes=(1, 2))
    x = _x(2, 3, 4, 16)
    with pytest.raises(ValueError, match="attention_bias and cache act on the sequence axis"):
        layer(x, x, attention_bias=np.zeros((1, 2, 12, 12), "float32"))


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        ({"attention_axes": (1, 2)}, (B, 3, 4, D)),
        ({"attention_axes": -2, "use_gate": True}, (B, 3, 4, D)),
        ({"use_gate": True, "sliding_window": 2}, (B, T, D)),
        ({"output_shape": (2, 8)}, (B, T, D)),
    ],
)
def test_keras_features_match_keras_after_set_weights(kwargs, shape):
    query = _x(*shape)
    theirs = keras.layers.MultiHeadAttention(num_heads=2, key_dim=8, **kwargs)
    expected, expected_scores = theirs(query, query, return_attention_scores=True)
    ours = _transferred(theirs, query, query, num_heads=2, key_dim=8, **kwargs)
    output, scores = ours(query, query, return_attention_scores=True)
    np.testing.assert_allclose(output, expected, atol=1e-5)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)


def test_sliding_window_narrows_our_window_and_decodes_with_a_cache():
    """Keras' band |i - j| < 3 ANDed with our (1, None): keys i-1..i+2; cached
    decoding offsets it by the step's position, so steps equal one full pass."""
    x = _x(2, 6, D)
    layer = MultiHeadAttention(num_heads=2, key_dim=8, sliding_window=3, window=(1, None))
    _, scores = layer(x, x, return_attention_scores=True)
    rows, cols = np.indices((6, 6))
    visible = (cols >= rows - 1) & (cols <= rows + 2)
    assert np.all(keras.ops.convert_to_numpy(scores)[..., ~visible] == 0)
    assert np.all(keras.ops.convert_to_numpy(scores)[..., visible] > 0)
    full = keras.ops.convert_to_numpy(layer(x, x, use_causal_mask=True))
    steps, _ = _decode_step_by_step(layer, x, np.zeros((2, 2, 6, 2, 8), "float32"))
    np.testing.assert_allclose(steps, full, atol=1e-5)


def test_keras_constructor_arguments_carry_over():
    from_keras = keras.layers.MultiHeadAttention(
        num_heads=2, key_dim=8, kernel_regularizer="l2", kernel_constraint="non_neg")
    config = {k: v for k, v in from_keras.get_config().items()
              if k in ("num_heads", "key_dim", "kernel_regularizer", "kernel_constraint")}
    ours = MultiHeadAttention(**config)
    x = _x(B, T, D)
    ours(x, x)
    assert len(ours.losses) == 4  # an L2 term for each projection kernel
    assert ours._query_dense.kernel.constraint is not None
