"""FlatEinsumDense computes what keras.layers.EinsumDense computes, forward and backward."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfformer.layers.flat_einsum_dense import FlatEinsumDense, _flat_split

CASES = [  # equation, output shape, bias axes, input shape
    ("abc,cde->abde", (None, 3, 4), "de", (2, 5, 6)),  # attention's query/key/value
    ("abcd,cde->abe", (None, 6), "e", (2, 5, 3, 4)),  # attention's output
    ("abc,cd->abd", (None, 7), None, (2, 5, 6)),  # Dense, no bias
    ("abc,cde->abde", (None, 3, 4), "d", (2, 5, 6)),  # a bias that broadcasts over e
    ("ab,bc->ac", 7, "c", (4, 6)),  # rank 2
]


def _pair(equation, output_shape, bias_axes, input_shape, **kwargs):
    ours = FlatEinsumDense(equation, output_shape, bias_axes=bias_axes, **kwargs)
    keras_layer = keras.layers.EinsumDense(equation, output_shape, bias_axes=bias_axes, **kwargs)
    ours.build(input_shape)
    keras_layer.build(input_shape)
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=w.shape).astype("float32") for w in ours.get_weights()]
    ours.set_weights(weights)
    keras_layer.set_weights(weights)
    return ours, keras_layer


def _output_and_gradients(layer, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) ** 2)
    return y, tape.gradient(loss, [x, *layer.trainable_variables])


@pytest.mark.parametrize("equation, output_shape, bias_axes, input_shape", CASES)
def test_outputs_and_gradients_equal_keras(equation, output_shape, bias_axes, input_shape):
    ours, keras_layer = _pair(equation, output_shape, bias_axes, input_shape)
    x = tf.constant(np.random.default_rng(1).normal(size=input_shape).astype("float32"))
    got, got_grads = _output_and_gradients(ours, x)
    want, want_grads = _output_and_gradients(keras_layer, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert len(got_grads) == len(want_grads)
    for g, w in zip(got_grads, want_grads):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def test_the_kernel_gradient_is_one_matmul_not_a_batched_product_and_a_sum():
    ours, keras_layer = _pair(*CASES[0])

    def op_types(layer):
        @tf.function
        def gradient(x):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(layer(x))
            return tape.gradient(loss, layer.kernel)
        graph = gradient.get_concrete_function(tf.TensorSpec([None, None, 6])).graph
        return {op.type for op in graph.get_operations()}

    ours_ops = op_types(ours)
    assert "MatMul" in ours_ops and not ours_ops & {"Einsum", "BatchMatMulV2"}
    # Keras' einsum, which TensorFlow runs as a batch matmul whose kernel gradient is summed
    assert "Einsum" in op_types(keras_layer)


def test_mixed_bfloat16_and_xla_match_keras():
    ours, keras_layer = _pair(*CASES[0], dtype="mixed_bfloat16")
    x = tf.constant(np.random.default_rng(2).normal(size=(2, 5, 6)).astype("float32"))
    got = ours(x)
    assert got.dtype == tf.bfloat16 and ours.kernel.dtype == "float32"
    np.testing.assert_allclose(np.float32(got), np.float32(keras_layer(x)), rtol=2e-2, atol=2e-2)
    compiled = tf.function(ours, jit_compile=True)
    np.testing.assert_allclose(np.float32(compiled(x)), np.float32(got), rtol=2e-2, atol=2e-2)


def test_lora_and_unknown_leading_dimensions():
    ours, keras_layer = _pair(*CASES[0])
    ours.enable_lora(2)
    keras_layer.enable_lora(2)
    for ours_weight, keras_weight in zip(ours.trainable_weights, keras_layer.trainable_weights):
        value = np.random.default_rng(3).normal(size=ours_weight.shape).astype("float32")
        ours_weight.assign(value)
        keras_weight.assign(value)
    x = np.random.default_rng(4).normal(size=(2, 5, 6)).astype("float32")
    np.testing.assert_allclose(ours(x), keras_layer(x), rtol=1e-5, atol=1e-5)
    dynamic = tf.function(ours, input_signature=[tf.TensorSpec([None, None, 6])])
    np.testing.assert_allclose(dynamic(x), keras_layer(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["int8", "float8", "int4"])
def test_quantizes_and_then_computes_what_keras_quantized_layer_computes(mode, tmp_path):
    """Keras quantizes only its exact classes unless a subclass opts in: this one does,
    runs Keras' quantized call, and saves and loads quantized as Keras' layer does."""
    for case in CASES[:2]:
        ours, keras_layer = _pair(*case)
        x = np.random.default_rng(4).normal(size=case[3]).astype("float32")
        ours.quantize(mode)
        keras_layer.quantize(mode)
        assert ours.quantization_mode == mode
        np.testing.assert_allclose(ours(x), keras_layer(x), rtol=1e-5, atol=1e-5)
    model = keras.Sequential([keras.Input(case[3][1:]), ours])
    model.save(tmp_path / "quantized.keras")
    loaded = keras.saving.load_model(tmp_path / "quantized.keras")
    assert isinstance(loaded.layers[0], FlatEinsumDense)
    assert loaded.layers[0].quantization_mode == mode
    np.testing.assert_allclose(loaded(x), keras_layer(x), rtol=1e-5, atol=1e-5)


def test_config_round_trips_and_saves(tmp_path):
    ours, _ = _pair(*CASES[1])
    clone = FlatEinsumDense.from_config(ours.get_config())
    assert clone.get_config() == ours.get_config()
    inputs = keras.Input((5, 3, 4))
    model = keras.Model(inputs, ours(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.layers[-1], FlatEinsumDense)
    x = np.random.default_rng(5).normal(size=(2, 5, 3, 4)).astype("float32")
    np.testing.assert_array_equal(loaded(x), model(x))


@pytest.mark.parametrize("equation, split", [
    ("abc,cde->abde", (2, 1)), ("abcd,cde->abe", (2, 2)), ("ab,bc->ac", (1, 1)),
    ("abc,dce->abde", None),  # the kernel's contracted axis is not its first
    ("abc,ced->abde", None),  # the output's kernel axes are out of order
    ("acb,cde->abde", None),  # the input's contracted axis is not its last
    ("...b,bc->...c", None),  # ellipses run Keras' code
])
def test_only_equations_that_flatten_take_the_matmul(equation, split):
    assert _flat_split(equation) == split
