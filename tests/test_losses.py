"""tfformer.losses: the fused sparse cross-entropy equals Keras' one-hot formulation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layers.harness import two_cpu_strategy
from tfformer.losses import SparseCategoricalCrossentropy, sparse_categorical_crossentropy

VOCAB = 37


def _data(seed=0, shape=(3, 5)):
    rng = np.random.default_rng(seed)
    logits = tf.constant(rng.normal(0, 3, shape + (VOCAB,)), tf.float32)
    labels = tf.constant(rng.integers(0, VOCAB, shape), tf.int32)
    return labels, logits


def _keras_losses(labels, logits, smoothing):
    return keras.losses.categorical_crossentropy(
        tf.one_hot(labels, VOCAB), logits, from_logits=True, label_smoothing=smoothing)


def _value_and_gradient(fn, labels, logits, weights):
    with tf.GradientTape() as tape:
        tape.watch(logits)
        losses = fn(labels, logits)
        total = tf.reduce_sum(tf.cast(losses, tf.float32) * weights)
    return losses, tape.gradient(total, logits)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.4])
def test_losses_and_gradients_equal_keras_one_hot_formulation(smoothing):
    labels, logits = _data()
    weights = tf.random.stateless_uniform(labels.shape, (1, 2))  # a non-uniform upstream
    ours, our_gradient = _value_and_gradient(
        lambda y, x: sparse_categorical_crossentropy(y, x, smoothing), labels, logits, weights)
    theirs, their_gradient = _value_and_gradient(
        lambda y, x: _keras_losses(y, x, smoothing), labels, logits, weights)
    assert ours.shape == labels.shape and ours.dtype == tf.float32
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(our_gradient, their_gradient, rtol=1e-5, atol=1e-6)


def test_without_smoothing_equals_tf_sparse_op_at_extreme_logits():
    labels, logits = _data(seed=1)
    logits = logits * 40.0  # logits in the hundreds: a naive exp overflows
    ours = sparse_categorical_crossentropy(labels, logits)
    theirs = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
    assert np.all(np.isfinite(ours))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-4)


def test_bfloat16_logits_give_bfloat16_gradient_close_to_float32():
    labels, logits = _data(seed=2)
    weights = tf.ones(labels.shape)
    low = tf.cast(logits, tf.bfloat16)
    losses, gradient = _value_and_gradient(
        lambda y, x: sparse_categorical_crossentropy(y, x, 0.1), labels, low, weights)
    reference = _keras_losses(labels, tf.cast(low, tf.float32), 0.1)
    assert losses.dtype == tf.float32 and gradient.dtype == tf.bfloat16
    np.testing.assert_allclose(losses, reference, rtol=1e-5, atol=1e-5)
    _, full_gradient = _value_and_gradient(
        lambda y, x: sparse_categorical_crossentropy(y, x, 0.1), labels,
        tf.cast(low, tf.float32), weights)
    np.testing.assert_allclose(tf.cast(gradient, tf.float32), full_gradient, atol=1e-2)


def test_bad_arguments_are_named():
    labels, logits = _data()
    with pytest.raises(ValueError, match="label_smoothing"):
        sparse_categorical_crossentropy(labels, logits, 1.0)
    with pytest.raises(ValueError, match="one more axis"):
        sparse_categorical_crossentropy(labels, logits[..., 0])
    with pytest.raises(ValueError, match="label_smoothing"):
        SparseCategoricalCrossentropy(label_smoothing=-0.1)
    for bad in (VOCAB, -1):
        with pytest.raises(tf.errors.InvalidArgumentError, match="labels must be"):
            sparse_categorical_crossentropy(tf.fill(labels.shape, bad), logits)


def _tiny_model(mask_zero):
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, 8, mask_zero=mask_zero)(inputs)
    return keras.Model(inputs, keras.layers.Dense(VOCAB)(x))


@pytest.mark.parametrize("jit_compile", [False, True])
def test_loss_class_matches_keras_loss_in_fit_with_padding_mask(jit_compile):
    """Same masked loss value and same trained weights as Keras' own sparse loss."""
    rng = np.random.default_rng(3)
    ids = rng.integers(1, VOCAB, (8, 6)).astype("int32")
    ids[:, 4:] = 0  # padding, masked through the embedding's Keras mask
    labels = np.roll(ids, -1, axis=1)
    weights = []
    for loss in (SparseCategoricalCrossentropy(),
                 keras.losses.SparseCategoricalCrossentropy(from_logits=True)):
        keras.utils.set_random_seed(0)
        model = _tiny_model(mask_zero=True)
        model.compile(keras.optimizers.SGD(0.5), loss=loss, jit_compile=jit_compile)
        history = model.fit(ids, labels, batch_size=4, epochs=2, shuffle=False, verbose=0)
        weights.append((history.history["loss"], model.get_weights()))
    np.testing.assert_allclose(weights[0][0], weights[1][0], rtol=1e-5)
    for ours, theirs in zip(weights[0][1], weights[1][1]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)


def test_loss_class_config_round_trip():
    loss = SparseCategoricalCrossentropy(label_smoothing=0.2, name="xent")
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, SparseCategoricalCrossentropy)
    assert restored.get_config() == loss.get_config()


def test_gradient_under_two_replica_strategy_equals_one_device():
    labels, logits = _data(seed=4, shape=(4, 3))
    weights = tf.ones(labels.shape)
    _, expected = _value_and_gradient(
        lambda y, x: sparse_categorical_crossentropy(y, x, 0.1), labels, logits, weights)
    strategy = two_cpu_strategy()

    def replica_gradient(labels, logits):
        return _value_and_gradient(
            lambda y, x: sparse_categorical_crossentropy(y, x, 0.1), labels, logits,
            tf.ones(tf.shape(labels)))[1]

    dataset = tf.data.Dataset.from_tensor_slices((labels, logits)).batch(4)
    (inputs,) = list(strategy.experimental_distribute_dataset(dataset))
    per_replica = strategy.run(tf.function(replica_gradient), args=inputs)
    gathered = strategy.gather(per_replica, axis=0)
    np.testing.assert_allclose(gathered, expected, rtol=1e-5, atol=1e-6)
