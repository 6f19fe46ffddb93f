"""Dropout: Keras' layer with a 16-bit random draw per element."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfformer.layers import Dropout


@pytest.mark.parametrize("rate", [0.1, 0.5])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_drops_at_the_rate_and_scales_the_rest(rate, dtype):
    inputs = tf.cast(tf.random.stateless_uniform([64, 64, 33], (0, 1), 1.0, 2.0), dtype)
    outputs = Dropout(rate, seed=3, dtype=dtype)(inputs, training=True)
    assert outputs.dtype == inputs.dtype
    dropped = (outputs == 0).numpy()
    size = dropped.size
    # Binomial: 5 standard deviations of the dropped fraction.
    assert abs(dropped.mean() - rate) < 5 * np.sqrt(rate * (1 - rate) / size)
    kept = ~dropped
    expected = inputs * tf.cast(1.0 / (1.0 - rate), dtype)  # scaled in the input's dtype
    np.testing.assert_array_equal(tf.cast(outputs, tf.float32).numpy()[kept],
                                  tf.cast(expected, tf.float32).numpy()[kept])


def test_identity_when_not_training_or_rate_zero_and_zeros_at_rate_one():
    inputs = tf.random.stateless_normal([3, 5, 7], (0, 2))
    np.testing.assert_array_equal(Dropout(0.3)(inputs, training=False), inputs)
    np.testing.assert_array_equal(Dropout(0.0)(inputs, training=True), inputs)
    np.testing.assert_array_equal(Dropout(1.0)(inputs, training=True), tf.zeros_like(inputs))


def test_seeded_layers_repeat_and_successive_calls_differ():
    inputs = tf.ones([32, 48])
    first, second = Dropout(0.5, seed=7), Dropout(0.5, seed=7)
    a, b = first(inputs, training=True), second(inputs, training=True)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first(inputs, training=True), a)


def test_noise_shape_shares_the_mask_along_unit_axes():
    inputs = tf.ones([4, 10, 16])
    outputs = Dropout(0.5, noise_shape=(None, 1, 16), seed=1)(inputs, training=True).numpy()
    np.testing.assert_array_equal(outputs, np.broadcast_to(outputs[:, :1], outputs.shape))
    assert 0 < (outputs == 0).mean() < 1


def test_odd_sizes_and_the_gradient_is_the_mask_times_scale():
    inputs = tf.random.stateless_normal([3, 7, 5], (1, 1))  # an odd number of elements
    layer = Dropout(0.25, seed=4)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = layer(inputs, training=True)
    gradient = tape.gradient(outputs, inputs).numpy()
    kept = outputs.numpy() != 0
    np.testing.assert_allclose(gradient, np.where(kept, 1 / 0.75, 0.0), rtol=1e-6)


def test_config_matches_keras_dropout_and_round_trips():
    layer = Dropout(0.2, noise_shape=(None, 1, 8), seed=5)
    reference = keras.layers.Dropout(0.2, noise_shape=(None, 1, 8), seed=5)
    config = layer.get_config()
    assert {k: v for k, v in config.items() if k != "name"} == {
        k: v for k, v in reference.get_config().items() if k != "name"}
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(restored) is Dropout and restored.get_config() == config


def test_runs_under_xla_with_unknown_shape():
    layer = Dropout(0.5, seed=2)
    compiled = tf.function(lambda x: layer(x, training=True), jit_compile=True,
                           input_signature=[tf.TensorSpec([None, None], tf.float32)])
    outputs = compiled(tf.ones([5, 9])).numpy()
    assert outputs.shape == (5, 9)
    assert set(np.unique(outputs)) <= {0.0, 2.0}


def test_each_replica_of_a_strategy_drops_its_own_share():
    from tests.layers.harness import two_cpu_strategy

    strategy = two_cpu_strategy()
    with strategy.scope():
        layer = Dropout(0.5, seed=6)
    dataset = tf.data.Dataset.from_tensor_slices(tf.ones([8, 64])).batch(8)
    (batch,) = list(strategy.experimental_distribute_dataset(dataset))
    per_replica = strategy.run(tf.function(lambda x: layer(x, training=True)), args=(batch,))
    halves = [tensor.numpy() for tensor in strategy.experimental_local_results(per_replica)]
    for half in halves:
        assert half.shape == (4, 64) and set(np.unique(half)) == {0.0, 2.0}
    assert not np.array_equal(halves[0], halves[1])  # not one mask copied to both replicas
