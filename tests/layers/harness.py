"""The shared layer-test harness: the checks every tfformer layer must pass.

A `LayerCase` names a layer class, its constructor arguments, example inputs
and how to call it. `run_check(case, check, tmp_path)` runs one check;
`tests/layers/test_harness.py` applies every check to every case.
"""

import dataclasses
import os
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

CHECKS = (
    "config_round_trip",
    "symbolic_and_eager",
    "jit_fit_step",
    "mixed_bfloat16",
    "mixed_float16",
    "keras_save_load",
    "saved_model_round_trip",
    "mirrored_training_step",
)


def _default_call(layer, inputs):
    return layer(*inputs.values())


@dataclasses.dataclass
class LayerCase:
    name: str
    layer_class: type
    kwargs: dict
    inputs: Callable[[], dict]  # name -> numpy array, batch first
    call: Callable = _default_call  # (layer, {name: tensor}) -> one tensor
    tolerance: float = 1e-5

    def make(self, **overrides):
        return self.layer_class(**{**self.kwargs, **overrides})


def _keras_inputs(arrays):
    return {
        name: keras.Input(shape=array.shape[1:], dtype=str(array.dtype), name=name)
        for name, array in arrays.items()
    }


def build_model(case, layer, arrays):
    """A functional model: the layer, then a small trainable head (float32)."""
    inputs = _keras_inputs(arrays)
    outputs = case.call(layer, inputs)
    head = keras.layers.Dense(1, dtype="float32", name="head")(outputs)
    return keras.Model(inputs, {"layer": outputs, "head": head})


def _target(model, arrays):
    head = model(arrays)["head"]
    rng = np.random.default_rng(0)
    return rng.normal(size=tuple(head.shape)).astype("float32")


def _compile(model, jit_compile=False, run_eagerly=False):
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss={"head": "mse"},
        jit_compile=jit_compile,
        run_eagerly=run_eagerly,
    )


def _assert_close(actual, expected, tolerance, what):
    actual = np.asarray(keras.ops.convert_to_numpy(actual), dtype="float64")
    expected = np.asarray(keras.ops.convert_to_numpy(expected), dtype="float64")
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    error = np.max(np.abs(actual - expected)) if actual.size else 0.0
    assert error <= tolerance, f"{what}: max abs difference {error:.3g} > {tolerance}"


def config_round_trip(case, tmp_path):
    arrays = case.inputs()
    layer = case.make()
    expected = case.call(layer, arrays)
    config = layer.get_config()
    restored = case.layer_class.from_config(config)
    assert restored.get_config() == config
    # The registered name resolves through Keras' own deserialisation.
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is case.layer_class
    case.call(restored, arrays)
    restored.set_weights(layer.get_weights())
    _assert_close(case.call(restored, arrays), expected, case.tolerance, "from_config outputs")


def symbolic_and_eager(case, tmp_path):
    arrays = case.inputs()
    layer = case.make()
    symbolic = case.call(layer, _keras_inputs(arrays))
    eager = case.call(layer, arrays)
    batch = next(iter(arrays.values())).shape[0]
    assert tuple(symbolic.shape[1:]) == tuple(eager.shape[1:]), (symbolic.shape, eager.shape)
    assert eager.shape[0] == batch
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(eager)))


def jit_fit_step(case, tmp_path):
    arrays = case.inputs()
    layer = case.make()
    model = build_model(case, layer, arrays)
    _compile(model, jit_compile=True)
    before = [np.array(w) for w in layer.trainable_weights]
    history = model.fit(arrays, {"head": _target(model, arrays)}, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    if before:
        after = [np.array(w) for w in layer.trainable_weights]
        assert any(not np.array_equal(a, b) for a, b in zip(after, before)), "no weight moved"


def _mixed(case, policy, jit_compile):
    arrays = case.inputs()
    reference = case.make()
    expected = case.call(reference, arrays)
    layer = case.make(dtype=policy)
    case.call(layer, arrays)
    layer.set_weights(reference.get_weights())
    for weight in layer.weights:
        assert weight.dtype == "float32", f"{weight.path} is {weight.dtype} under {policy}"
    output = case.call(layer, arrays)
    assert keras.backend.standardize_dtype(output.dtype) == layer.compute_dtype
    values = keras.ops.convert_to_numpy(keras.ops.cast(output, "float32"))
    assert np.all(np.isfinite(values)), f"non-finite outputs under {policy}"
    scale = max(1.0, float(np.max(np.abs(keras.ops.convert_to_numpy(expected)))))
    _assert_close(values, expected, 0.1 * scale, f"{policy} vs float32")
    # And it trains in that policy: the step is finite and moves the layer's weights.
    model = build_model(case, layer, arrays)
    _compile(model, jit_compile=jit_compile, run_eagerly=not jit_compile)
    before = [np.array(w) for w in layer.trainable_weights]
    history = model.fit(arrays, {"head": _target(model, arrays)}, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0]), f"non-finite loss under {policy}"
    after = [np.array(w) for w in layer.trainable_weights]
    assert all(np.all(np.isfinite(w)) for w in after), f"non-finite weights under {policy}"
    if before:
        assert any(not np.array_equal(a, b) for a, b in zip(after, before)), "no weight moved"


def mixed_bfloat16(case, tmp_path):
    _mixed(case, "mixed_bfloat16", jit_compile=True)


def mixed_float16(case, tmp_path):
    # Eager: the layers have no float16-specific code, so float16 under XLA would compile
    # the graph that mixed_bfloat16 already compiles, with another element type; the eager
    # step still checks every float16 forward and backward op for overflow. float16 under XLA
    # with Keras' loss scaling trains the translation model in tests/applications/test_training.py.
    _mixed(case, "mixed_float16", jit_compile=False)


def keras_save_load(case, tmp_path):
    arrays = case.inputs()
    model = build_model(case, case.make(), arrays)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    _assert_close(restored(arrays)["layer"], model(arrays)["layer"], case.tolerance,
                  ".keras reload")


def saved_model_round_trip(case, tmp_path):
    arrays = case.inputs()
    model = build_model(case, case.make(), arrays)
    path = os.path.join(tmp_path, "saved_model")
    model.export(path, format="tf_saved_model", verbose=False)
    served = tf.saved_model.load(path)
    outputs = served.serve({k: tf.constant(v) for k, v in arrays.items()})
    _assert_close(outputs["layer"], model(arrays)["layer"], case.tolerance, "SavedModel reload")


_STRATEGY = []


def two_cpu_strategy():
    """One MirroredStrategy over two logical CPUs, shared by the whole process.

    Several MirroredStrategy objects in one process reuse collective instance
    keys, and their all-reduces then abort with shape mismatches; tests share
    this one instead.
    """
    if not _STRATEGY:
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        assert len(devices) >= 2, "conftest.py should have made two logical CPUs"
        _STRATEGY.append(tf.distribute.MirroredStrategy(devices[:2]))
    return _STRATEGY[0]


def mirrored_training_step(case, tmp_path):
    """One SGD step on two logical CPUs equals the same step on one device."""
    arrays = case.inputs()
    keras.utils.set_random_seed(1)
    single = build_model(case, case.make(), arrays)
    target = _target(single, arrays)
    batch = next(iter(arrays.values())).shape[0]
    strategy = two_cpu_strategy()
    with strategy.scope():
        mirrored = build_model(case, case.make(), arrays)
        _compile(mirrored)
    mirrored.set_weights(single.get_weights())
    # The one-device reference runs eagerly: it needs no graph, and eager is a reference too.
    _compile(single, run_eagerly=True)
    single.fit(arrays, {"head": target}, batch_size=batch, epochs=1, verbose=0, shuffle=False)
    mirrored.fit(arrays, {"head": target}, batch_size=batch, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(mirrored.get_weights(), single.get_weights()):
        _assert_close(a, b, 1e-4, "mirrored vs single-device weights after one step")


def run_check(case, check, tmp_path):
    keras.utils.set_random_seed(0)
    globals()[check](case, tmp_path)
