import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layers.harness import two_cpu_strategy
from tfformer.layers import SpecAugment

ARGS = dict(frequency_masks=2, frequency_mask_width=5, time_masks=3, time_mask_width=7, seed=3)


def _masked_cells(layer, features, mask=None):
    out = np.asarray(layer(features, mask=mask, training=True))
    return out == 0


def test_masks_are_bands_and_spans_within_their_limits():
    features = np.ones((16, 60, 20), "float32")
    lengths = np.array([60, 30] * 8)
    mask = np.arange(60)[None, :] < lengths[:, None]
    masked = _masked_cells(SpecAugment(**ARGS), features, mask)
    for row, length in zip(masked, lengths):
        bins = row.all(axis=0)  # bins masked in every frame: frequency bands
        frames = row.all(axis=1)  # frames masked in every bin: time spans
        assert bins.sum() <= 2 * 5 and frames.sum() <= 3 * 7
        assert not frames[length:].any(), "time masks stay inside the valid frames"
        # every masked cell lies in a masked band or span
        assert np.array_equal(row, bins[None, :] | frames[:, None])
    assert masked.any()
    assert len({m.tobytes() for m in masked}) > 8, "each example gets its own masks"


def test_inference_passes_through_and_zero_masks_are_identity():
    x = np.random.default_rng(0).normal(size=(2, 30, 8)).astype("float32")
    np.testing.assert_array_equal(SpecAugment(**ARGS)(x), x)
    none = SpecAugment(frequency_masks=0, time_masks=0)
    np.testing.assert_array_equal(none(x, training=True), x)


def test_config_round_trip_mask_propagation_and_errors():
    layer = SpecAugment(**ARGS)
    assert SpecAugment.from_config(layer.get_config()).get_config() == layer.get_config()
    inputs = keras.Input((None, 8))
    masked = keras.layers.Masking(0.0)(inputs)
    out = SpecAugment(**ARGS)(masked)
    assert out._keras_mask is not None
    with pytest.raises(ValueError, match="time_masks=-1"):
        SpecAugment(time_masks=-1)


def test_jit_mixed_precision_and_strategy():
    x = np.random.default_rng(1).normal(size=(4, 40, 16)).astype("float32")
    layer = SpecAugment(**ARGS)
    compiled = tf.function(lambda v: layer(v, training=True), jit_compile=True)
    assert np.asarray(compiled(x) == 0).any()
    bf16 = SpecAugment(**ARGS, dtype="mixed_bfloat16")
    out = bf16(tf.cast(x, tf.bfloat16), training=True)
    assert out.dtype == tf.bfloat16
    strategy = two_cpu_strategy()
    with strategy.scope():
        mirrored = SpecAugment(**ARGS)
    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(x).batch(4))
    per_replica = strategy.run(lambda v: mirrored(v, training=True), args=(next(iter(dataset)),))
    shapes = [t.shape for t in strategy.experimental_local_results(per_replica)]
    assert shapes == [(2, 40, 16), (2, 40, 16)]


def test_each_replica_of_a_strategy_draws_its_own_masks():
    half = np.random.default_rng(2).normal(size=(2, 40, 16)).astype("float32") + 5.0  # no zeros
    strategy = two_cpu_strategy()
    with strategy.scope():
        layer = SpecAugment(**ARGS)
    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(np.concatenate([half, half])).batch(4))
    per_replica = strategy.run(tf.function(lambda v: layer(v, training=True)),
                               args=(next(iter(dataset)),))
    masked = [t.numpy() == 0 for t in strategy.experimental_local_results(per_replica)]
    assert masked[0].any() and masked[1].any()
    assert not np.array_equal(masked[0], masked[1])  # same inputs, different draws
