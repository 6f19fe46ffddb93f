"""LayerNormalization: Keras' layer, fused into two XLA functions in training."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tfformer.layers import LayerNormalization


def _pair(dtype="float32", **kwargs):
    """Our layer and Keras', with the same arguments (`_build_alike` gives them weights)."""
    ours = LayerNormalization(dtype=dtype, **kwargs)
    theirs = keras.layers.LayerNormalization(dtype=dtype, **kwargs)
    return ours, theirs


def _outputs_and_gradients(layer, inputs, upstream, training):
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = layer(inputs, training=training)
    gradients = tape.gradient(outputs, [inputs, *layer.trainable_weights],
                              output_gradients=tf.cast(upstream, outputs.dtype))
    return [tf.cast(t, tf.float32).numpy() for t in [outputs, *gradients]]


def _build_alike(ours, theirs, shape, seed=0):
    """Builds both for `shape` with the same non-trivial gamma and beta."""
    ours.build(shape)
    theirs.build(shape)
    rng = np.random.default_rng(seed)
    weights = [rng.normal(1.0, 0.5, w.shape).astype("float32") for w in theirs.weights]
    ours.set_weights(weights)
    theirs.set_weights(weights)


@pytest.mark.parametrize("shape", [(6, 32), (3, 5, 32), (2, 3, 4, 24)])
@pytest.mark.parametrize("options", [{}, {"center": False}, {"scale": False}])
def test_training_path_equals_keras_outputs_and_gradients(shape, options):
    ours, theirs = _pair(epsilon=1e-5, **options)
    _build_alike(ours, theirs, shape)
    inputs = tf.random.stateless_normal(shape, (0, 1), mean=3.0, stddev=2.0)
    upstream = tf.random.stateless_normal(shape, (0, 2))
    expected = _outputs_and_gradients(theirs, inputs, upstream, training=True)
    actual = _outputs_and_gradients(ours, inputs, upstream, training=True)
    assert len(actual) == len(expected) == 1 + 1 + len(theirs.trainable_weights)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-4)


def test_bfloat16_inputs_give_bfloat16_outputs_and_gradients_close_to_keras():
    ours, theirs = _pair(dtype="mixed_bfloat16", epsilon=1e-6)
    _build_alike(ours, theirs, (4, 16, 64))
    inputs = tf.cast(tf.random.stateless_normal([4, 16, 64], (1, 1)), tf.bfloat16)
    upstream = tf.random.stateless_normal([4, 16, 64], (1, 2))
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = ours(inputs, training=True)
    assert outputs.dtype == tf.bfloat16
    assert tape.gradient(outputs, inputs, output_gradients=tf.cast(upstream, tf.bfloat16)
                         ).dtype == tf.bfloat16
    expected = _outputs_and_gradients(theirs, inputs, upstream, training=True)
    actual = _outputs_and_gradients(ours, inputs, upstream, training=True)
    for a, e in zip(actual, expected):
        scale = np.max(np.abs(e))
        np.testing.assert_allclose(a, e, atol=2**-7 * scale)  # bfloat16 has 8 bits


@pytest.mark.parametrize("kwargs", [{"axis": 1}, {"axis": [1, 2]}])
def test_other_axes_fall_back_to_keras(kwargs):
    ours, theirs = _pair(**kwargs)
    _build_alike(ours, theirs, (2, 6, 8))
    inputs = tf.random.stateless_normal([2, 6, 8], (2, 1))
    upstream = tf.random.stateless_normal([2, 6, 8], (2, 2))
    for a, e in zip(_outputs_and_gradients(ours, inputs, upstream, True),
                    _outputs_and_gradients(theirs, inputs, upstream, True)):
        np.testing.assert_array_equal(a, e)


def test_inference_is_keras_own_computation():
    ours, theirs = _pair(epsilon=1e-6)
    _build_alike(ours, theirs, (3, 7, 16))
    inputs = tf.random.stateless_normal([3, 7, 16], (3, 1))
    np.testing.assert_array_equal(ours(inputs), theirs(inputs))


def test_the_statistics_are_those_of_a_layer_norm():
    layer = LayerNormalization(epsilon=1e-6)
    outputs = layer(tf.random.stateless_normal([5, 9, 48], (4, 1), mean=-7.0, stddev=3.0),
                    training=True).numpy()
    np.testing.assert_allclose(outputs.mean(axis=-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(outputs.std(axis=-1), 1.0, atol=1e-4)


def test_fit_matches_keras_layer_norm_with_and_without_xla():
    def history(layer_class, jit_compile):
        keras.utils.set_random_seed(5)
        inputs = keras.Input((6, 16))
        hidden = keras.layers.Dense(16)(inputs)
        outputs = keras.layers.Dense(1)(layer_class(epsilon=1e-6)(hidden))
        model = keras.Model(inputs, outputs)
        model.compile(keras.optimizers.SGD(0.1), "mse", jit_compile=jit_compile)
        x = np.random.default_rng(0).normal(size=(32, 6, 16)).astype("float32")
        y = np.random.default_rng(1).normal(size=(32, 6, 1)).astype("float32")
        losses = model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
        return losses.history["loss"], model.get_weights()

    for jit_compile in (False, True):
        ours_loss, ours_weights = history(LayerNormalization, jit_compile)
        keras_loss, keras_weights = history(keras.layers.LayerNormalization, jit_compile)
        np.testing.assert_allclose(ours_loss, keras_loss, rtol=1e-4)
        for a, e in zip(ours_weights, keras_weights):
            np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5)


def test_exported_model_holds_no_xla_compiled_function(tmp_path):
    inputs = keras.Input((4, 8))
    model = keras.Model(inputs, LayerNormalization()(inputs))
    model.compile("sgd", "mse")  # fit traces the fused training path
    model.fit(np.ones((2, 4, 8), "float32"), np.zeros((2, 4, 8), "float32"), verbose=0)
    path = os.path.join(tmp_path, "exported")
    model.export(path, format="tf_saved_model", verbose=False)
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as handle:
        proto.ParseFromString(handle.read())
    functions = proto.meta_graphs[0].graph_def.library.function
    assert functions
    assert not [f.signature.name for f in functions if "_XlaMustCompile" in f.attr]


def test_config_matches_keras_layer_norm_and_round_trips():
    layer = LayerNormalization(axis=-1, epsilon=1e-6, center=False, name="norm")
    config = layer.get_config()
    assert config == keras.layers.LayerNormalization(
        axis=-1, epsilon=1e-6, center=False, name="norm").get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is LayerNormalization
    assert restored.get_config() == config
