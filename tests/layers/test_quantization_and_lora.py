"""Keras' quantization (`Model.quantize`) and LoRA (`enable_lora`) reach every tfformer
layer that holds a projection, and leave the model doing what it did."""

import warnings

import keras
import numpy as np
import pytest

from applications.common.quantization import frozen_garbage
from tfformer import layers
from tfformer.lora import enable_lora

# Relative RMS error of a quantized model's outputs; measured 0.015, 0.08 and 0.13 on
# 2 + 2 layer stacks (float8's scales start uncalibrated: Keras trains them).
TOLERANCE = {"int8": 0.05, "float8": 0.2, "int4": 0.3}
PROJECTIONS = (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.Embedding)


def _rng():
    return np.random.default_rng(0)


def _encoder_decoder(num_layers=1, **attention):
    source, target = keras.Input((None, 32)), keras.Input((None, 32))
    memory = layers.TransformerEncoder(num_layers, d_model=32, num_heads=4, intermediate_dim=64,
                                       **attention)(source)
    outputs = layers.TransformerDecoder(num_layers, d_model=32, num_heads=4, intermediate_dim=64)(
        target, memory)
    return keras.Model([source, target], outputs)


def _projections(model):
    return [layer for layer in model._flatten_layers() if isinstance(layer, PROJECTIONS)]


def _relative_error(output, reference):
    return float(np.sqrt(np.mean((output - reference) ** 2) / np.mean(reference ** 2)))


def _quantize(model, mode):
    with warnings.catch_warnings(), frozen_garbage():  # weightless layers say they have nothing
        warnings.simplefilter("ignore")  # to quantize
        model.quantize(mode)


@pytest.mark.parametrize("mode", ["int8", "float8", "int4"])
def test_model_quantize_reaches_every_projection_of_encoder_and_decoder_stacks(mode):
    keras.utils.set_random_seed(0)
    model = _encoder_decoder()
    inputs = [_rng().normal(size=(2, 7, 32)).astype("float32"),
              _rng().normal(size=(2, 5, 32)).astype("float32")]
    reference = np.asarray(model(inputs))
    _quantize(model, mode)
    projections = _projections(model)
    # an encoder layer's 4 attention + 2 feed-forward projections, a decoder layer's 8 + 2
    assert len(projections) == 16
    assert {layer.quantization_mode for layer in projections} == {mode}
    output = np.asarray(model(inputs))
    assert 0 < _relative_error(output, reference) < TOLERANCE[mode]


@pytest.mark.parametrize("mode", ["int8", "float8", "int4"])
@pytest.mark.parametrize("name", ["linear_attention", "patch", "shifted_patch", "gated_rotary"])
def test_each_projecting_layer_quantizes(name, mode):
    keras.utils.set_random_seed(0)
    if name in ("patch", "shifted_patch"):
        layer_class = layers.PatchEmbedding if name == "patch" else layers.ShiftedPatchEmbedding
        data = _rng().normal(size=(2, 8, 8, 3)).astype("float32")
        inputs = keras.Input(data.shape[1:])
        model = keras.Model(inputs, layer_class(d_model=16, patch_size=4)(inputs))
    else:
        layer = (layers.LinearAttention(num_heads=2, key_dim=8) if name == "linear_attention"
                 else layers.MultiHeadAttention(num_heads=2, key_dim=8, use_gate=True,
                                                use_rotary=True, window=(2, 1)))
        data = _rng().normal(size=(2, 6, 16)).astype("float32")
        inputs = keras.Input(data.shape[1:])
        model = keras.Model(inputs, layer(inputs, inputs))
    reference = np.asarray(model(data))
    _quantize(model, mode)
    assert {layer.quantization_mode for layer in _projections(model)} == {mode}
    assert 0 < _relative_error(np.asarray(model(data)), reference) < TOLERANCE[mode]


def test_tied_output_logits_follow_a_quantized_embedding_table():
    layer = layers.TokenAndPositionEmbedding(50, 16, position="sinusoidal")
    layer.build((None, None))
    states = _rng().normal(size=(2, 3, 16)).astype("float32")
    reference = np.asarray(layer.reverse(states))
    np.testing.assert_allclose(reference, states @ np.asarray(layer.token_embedding.embeddings).T,
                               rtol=1e-5, atol=1e-5)
    layer.token_embedding.quantize("int8")
    assert layer.token_embedding.quantization_mode == "int8"
    assert 0 < _relative_error(np.asarray(layer.reverse(states)), reference) < 0.05


def test_quantized_stacks_run_compiled():
    model = _encoder_decoder(window=(3, 0))
    inputs = [_rng().normal(size=(2, 7, 32)).astype("float32"),
              _rng().normal(size=(2, 5, 32)).astype("float32")]
    _quantize(model, "int8")
    eager = np.asarray(model(inputs))
    model.compile(jit_compile=True)
    np.testing.assert_allclose(model.predict(inputs, verbose=0), eager, atol=1e-4)


@pytest.mark.parametrize("quantized", [False, True])
def test_lora_starts_as_the_model_and_trains_only_its_factors(quantized):
    keras.utils.set_random_seed(0)
    model = _encoder_decoder()
    inputs = [_rng().normal(size=(4, 7, 32)).astype("float32"),
              _rng().normal(size=(4, 5, 32)).astype("float32")]
    if quantized:  # QLoRA: int8 kernels, float LoRA factors
        _quantize(model, "int8")
    before = np.asarray(model(inputs))
    frozen = {weight.path: np.array(weight) for weight in model.weights}
    paths = enable_lora(model, rank=4)
    assert len(paths) == 16
    np.testing.assert_array_equal(np.asarray(model(inputs)), before)
    assert {w.path.rsplit("/", 1)[-1] for w in model.trainable_weights} == {
        "lora_kernel_a", "lora_kernel_b"}
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse", run_eagerly=True)
    model.fit(inputs, np.zeros_like(before), epochs=2, verbose=0)
    for weight in model.weights:
        if weight.path in frozen:
            np.testing.assert_array_equal(np.array(weight), frozen[weight.path], weight.path)
    assert not np.allclose(np.asarray(model(inputs)), before)


def test_lora_on_named_projections_only():
    model = _encoder_decoder()
    paths = enable_lora(model, rank=2, target_names=("query", "value"))
    assert len(paths) == 6 and all(path.rsplit("/", 1)[-1] in ("query", "value")
                                    for path in paths)
    with pytest.raises(ValueError, match="no Dense or EinsumDense layer named"):
        enable_lora(_encoder_decoder(), rank=2, target_names=("q_proj",))


def test_a_quantized_model_exports_with_model_export_and_serves(tmp_path):
    """Keras' `model.export` of an int8 model of our attention, answered through TF Serving's
    loader (MetaGraph into a session, restore, init) in a fresh process."""
    from tests.support.serving_checks import serve_in_session

    inputs = keras.Input((None, 16), name="states")
    attention = layers.MultiHeadAttention(num_heads=2, key_dim=8, use_gate=True, window=(2, 0))
    model = keras.Model(inputs, attention(inputs, inputs))
    _quantize(model, "int8")
    data = _rng().normal(size=(2, 5, 16)).astype("float32")
    expected = np.asarray(model(data))
    model.export(str(tmp_path / "1"), format="tf_saved_model")
    (served,) = serve_in_session(str(tmp_path / "1"), [("serving_default", {"states": data})])
    (output,) = served.values()
    np.testing.assert_allclose(output, expected, atol=1e-5)
