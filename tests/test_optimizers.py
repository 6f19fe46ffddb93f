"""tfformer.optimizers: Keras' Adam and AdamW with a fused update kernel."""

import contextlib
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layers.harness import two_cpu_strategy
from tfformer import optimizers

PAIRS = [
    (optimizers.Adam, keras.optimizers.Adam, {"beta_2": 0.98, "epsilon": 1e-9}),
    (optimizers.AdamW, keras.optimizers.AdamW, {"weight_decay": 0.05}),
]


def _model():
    inputs = keras.Input((5, 4))
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(hidden)))


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 5, 4)).astype("float32"), rng.integers(0, 3, 32)


def _train(make_optimizer, jit_compile=False, strategy=None, policy="float32"):
    keras.utils.set_random_seed(3)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        with strategy.scope() if strategy else contextlib.nullcontext():
            model = _model()
            model.compile(make_optimizer(), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          jit_compile=jit_compile)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    x, y = _data()
    history = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    return history.history["loss"], model.get_weights(), model


@pytest.mark.parametrize("ours, theirs, kwargs", PAIRS)
@pytest.mark.parametrize("jit_compile", [False, True])
def test_training_equals_keras_optimizer(ours, theirs, kwargs, jit_compile):
    schedule = lambda: keras.optimizers.schedules.ExponentialDecay(0.01, 4, 0.5)
    our_loss, our_weights, _ = _train(lambda: ours(schedule(), **kwargs), jit_compile)
    their_loss, their_weights, _ = _train(lambda: theirs(schedule(), **kwargs), jit_compile)
    np.testing.assert_allclose(our_loss, their_loss, rtol=1e-5)
    for a, b in zip(our_weights, their_weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(our_weights[0], _train(lambda: ours(0.0, **kwargs))[1][0]), "nothing trained"


def test_mirrored_and_mixed_bfloat16_training_equal_keras_optimizer():
    # Under mixed_bfloat16 the forward pass reads the weights rounded to bfloat16, so an
    # update that differs from Keras' in its last float32 bit can round a weight the other
    # way: after 3 epochs the weights agree to ~2e-5, against steps of ~1e-2 (a wrong
    # update rule is off by that much).
    for strategy, policy, atol in [(two_cpu_strategy(), "float32", 1e-6),
                                   (None, "mixed_bfloat16", 2e-4)]:
        ours = _train(lambda: optimizers.Adam(0.01), strategy=strategy, policy=policy)
        theirs = _train(lambda: keras.optimizers.Adam(0.01), strategy=strategy, policy=policy)
        np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5 if atol < 1e-5 else 1e-4)
        for a, b in zip(ours[1], theirs[1]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=atol)
        untrained = _train(lambda: optimizers.Adam(0.0), strategy=strategy, policy=policy)
        assert max(np.max(np.abs(a - b)) for a, b in zip(ours[1], untrained[1])) > 50 * atol


@pytest.mark.parametrize("ours, theirs, kwargs", PAIRS)
def test_embedding_gradients_with_repeated_rows_update_as_their_dense_sum(ours, theirs, kwargs):
    # An embedding's gradient is IndexedSlices, one slice per looked-up token, so a token
    # seen twice in a batch gives two slices. Adam must see their sum: Keras 3's update
    # squares the slices one by one (the second moment gets g1**2 + g2**2, not (g1 + g2)**2).
    def run(optimizer, densify):
        table = keras.Variable(np.ones((6, 3), "float32"))
        for step in range(3):
            gradient = tf.IndexedSlices(
                tf.constant([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0], [4.0, 0.0, 1.0]]) * (step + 1),
                tf.constant([1, 4, 1]), tf.constant([6, 3]))
            optimizer.apply([tf.convert_to_tensor(gradient) if densify else gradient], [table])
        return table.numpy()

    expected = run(theirs(0.01, **kwargs), densify=True)
    np.testing.assert_allclose(run(ours(0.01, **kwargs), densify=False), expected, rtol=1e-6)
    assert not np.allclose(run(theirs(0.01, **kwargs), densify=False)[1], expected[1])


def test_amsgrad_uses_keras_update():
    ours = _train(lambda: optimizers.Adam(0.01, amsgrad=True))
    theirs = _train(lambda: keras.optimizers.Adam(0.01, amsgrad=True))
    for a, b in zip(ours[1], theirs[1]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("ours, theirs, kwargs", PAIRS)
def test_config_matches_keras_and_the_saved_model_resumes(ours, theirs, kwargs, tmp_path):
    assert (ours(0.01, name="opt", **kwargs).get_config()
            == theirs(0.01, name="opt", **kwargs).get_config())
    _, _, model = _train(lambda: ours(0.01, **kwargs))
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored.optimizer) is ours
    assert int(restored.optimizer.iterations) == int(model.optimizer.iterations) == 12
    for a, b in zip(restored.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(a, b)
    x, y = _data()
    model.fit(x, y, batch_size=8, shuffle=False, verbose=0)
    restored.fit(x, y, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(restored.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
