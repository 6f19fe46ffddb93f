"""Windowed self-attention without requested weights runs block by block: same outputs and
gradients as the masked full computation, and no (T, T) tensor anywhere in its graph."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfformer.layers import MultiHeadAttention, TransformerEncoder
from tfformer.layers.banded_attention import BANDED_MIN_BLOCKS, MIN_BLOCK


def _blocked_length(window, extra):
    """A length long enough for the block-by-block path, `extra` past the threshold."""
    return BANDED_MIN_BLOCKS * max(*window, MIN_BLOCK) + extra


def _inputs(length, seed=0):
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.normal(size=(3, length, 8)).astype("float32"))
    mask = np.ones((3, length), bool)
    mask[1, length // 2:] = False  # padding
    mask[2, :] = length == 1  # all padding when longer than 1
    return x, tf.constant(mask)


@pytest.mark.parametrize("window, extra", [((3, 1), 5), ((2, 2), 0), ((0, 4), 13),
                                           ((5, 0), 1), ((1, 1), 7), ((20, 4), 3)])
def test_blocks_equal_the_masked_full_computation(window, extra):
    layer = MultiHeadAttention(2, 4, window=window)
    x, mask = _inputs(_blocked_length(window, extra))

    def run(with_weights):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = layer(x, x, query_mask=mask, value_mask=mask,
                        return_attention_scores=with_weights)  # weights force the full path
            out = out[0] if with_weights else out
            loss = tf.reduce_sum(out * tf.range(1.0, 9.0))
        return out, tape.gradient(loss, [x, *layer.trainable_variables])

    banded, banded_grads = run(False)
    full, full_grads = run(True)
    np.testing.assert_allclose(banded, full, atol=1e-6)
    for got, want in zip(banded_grads, full_grads):
        # Sums over B*T terms; the key bias, whose true gradient is 0, gets rounding noise.
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("score, distribution", [("dot", "softmax"), ("general", "softmax"),
                                                  ("additive", "softmax"),
                                                  ("scaled_dot", "sparsemax")])
def test_every_score_and_distribution_runs_blocks_as_the_full_path(score, distribution):
    # dot scores read heads-first blocks as they are; the others go through
    # AttentionScore.blocks' default, which lays them out as `call` takes them
    layer = MultiHeadAttention(2, 4, window=(3, 2), score=score, distribution=distribution)
    x, mask = _inputs(_blocked_length((3, 2), 6))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        banded = layer(x, x, query_mask=mask, value_mask=mask)
        full, _ = layer(x, x, query_mask=mask, value_mask=mask, return_attention_scores=True)
    np.testing.assert_allclose(banded, full, atol=1e-5)
    np.testing.assert_allclose(tape.gradient(banded, x), tape.gradient(full, x), atol=1e-4)


def test_query_and_value_masks_keep_their_own_meaning():
    layer = MultiHeadAttention(2, 4, window=(2, 1))
    x, mask = _inputs(_blocked_length((2, 1), 3))
    banded = layer(x, x, query_mask=mask)
    full, _ = layer(x, x, query_mask=mask, return_attention_scores=True)
    np.testing.assert_allclose(banded, full, atol=1e-6)


def test_a_windowed_encoder_graph_holds_no_length_squared_tensor():
    length = _blocked_length((8, 8), 0)
    encoder = TransformerEncoder(2, 16, 2, 32, dropout=0.0, window=(8, 8))
    encoder.build((None, None, 16))
    graph = tf.function(lambda x: encoder(x)).get_concrete_function(
        tf.TensorSpec([1, length, 16])).graph
    sizes = [op.outputs[0].shape.num_elements() or 0 for op in graph.get_operations()
             if op.outputs and op.outputs[0].shape.rank is not None]
    assert max(sizes) < length * length  # full attention would hold (1, 2, T, T)
    full = tf.function(lambda x: encoder(x, return_attention_scores=True)[0])
    full_sizes = [op.outputs[0].shape.num_elements() or 0 for op in full.get_concrete_function(
        tf.TensorSpec([1, length, 16])).graph.get_operations()
        if op.outputs and op.outputs[0].shape.rank is not None]
    assert max(full_sizes) >= 2 * length * length


def test_unknown_lengths_take_the_full_path_and_train_under_xla():
    layer = MultiHeadAttention(2, 4, window=(2, 1))
    x, mask = _inputs(_blocked_length((2, 1), 9))

    @tf.function(jit_compile=True, input_signature=[tf.TensorSpec([None, None, 8]),
                                                    tf.TensorSpec([None, None], tf.bool)])
    def gradients(x, m):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, x, query_mask=m, value_mask=m))
        return tape.gradient(loss, x)

    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x, x, query_mask=mask, value_mask=mask))  # blocks
    np.testing.assert_allclose(gradients(x, mask), tape.gradient(loss, x), atol=1e-5)


def _largest_tensor(function, *specs):
    graph = function.get_concrete_function(*specs).graph
    return max(op.outputs[0].shape.num_elements() or 0 for op in graph.get_operations()
               if op.outputs and op.outputs[0].shape.rank is not None)


@pytest.mark.parametrize("input_dtype", [tf.float32, tf.bfloat16])
def test_blocks_under_mixed_bfloat16_and_xla(input_dtype):
    layer = MultiHeadAttention(2, 4, window=(2, 1), dtype="mixed_bfloat16")
    x, mask = _inputs(_blocked_length((2, 1), 2))
    # float32 input is what a user's first layer gets; Keras casts query and value one by
    # one, and the layer must still see one tensor, i.e. self-attention, i.e. blocks.
    x = tf.cast(x, input_dtype)
    banded = layer(x, x, query_mask=mask, value_mask=mask)
    assert banded.dtype == tf.bfloat16
    full, _ = layer(x, x, query_mask=mask, value_mask=mask, return_attention_scores=True)
    # bfloat16 keeps 8 significant bits: sums taken in another order (XLA's, run to run)
    # differ by a few units in the last place, 1/64 of the value.
    np.testing.assert_allclose(np.float32(banded), np.float32(full), atol=0.05, rtol=1 / 64)
    compiled = tf.function(lambda x, m: layer(x, x, query_mask=m, value_mask=m), jit_compile=True)
    np.testing.assert_allclose(np.float32(compiled(x, mask)), np.float32(banded), atol=0.05,
                               rtol=1 / 64)
    length = x.shape[1]
    largest = _largest_tensor(tf.function(lambda x: layer(x, x)),
                              tf.TensorSpec([1, length, 8], input_dtype))
    assert largest < length * length  # the full path would hold (1, 2, T, T) scores


def test_a_keras_mask_survives_the_one_cast_under_mixed_precision():
    layer = MultiHeadAttention(2, 4, window=(2, 1), dtype="mixed_bfloat16")
    x, mask = _inputs(_blocked_length((2, 1), 4))
    masked_x = keras.layers.Masking()(x * tf.cast(mask, tf.float32)[..., None])
    implicit = layer(masked_x, masked_x)
    explicit = layer(masked_x, masked_x, query_mask=mask, value_mask=mask)
    np.testing.assert_array_equal(np.float32(implicit), np.float32(explicit))
    assert not np.array_equal(np.float32(implicit), np.float32(layer(x, x)))


def test_an_explicit_key_equal_to_the_value_still_uses_blocks():
    layer = MultiHeadAttention(2, 4, window=(2, 1))
    x, mask = _inputs(_blocked_length((2, 1), 1))
    banded = layer(x, x, key=x, query_mask=mask, value_mask=mask)
    separate_key = layer(x, x, key=x + 0.0, query_mask=mask, value_mask=mask)  # full path
    np.testing.assert_allclose(banded, separate_key, atol=1e-6)
