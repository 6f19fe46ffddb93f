import keras
import numpy as np
import pytest
import tensorflow as tf

from tfformer.layers import ConvSubsampling


def test_mask_shrinks_with_time_and_padding_changes_nothing_valid():
    layer = ConvSubsampling(d_model=8, filters=4)
    rng = np.random.default_rng(0)
    lengths = [37, 21]
    features = rng.normal(size=(2, 40, 10)).astype("float32")
    mask = np.arange(40)[None, :] < np.array(lengths)[:, None]
    padded = features.copy()
    padded[~mask] = 123.0
    out = np.asarray(layer(padded, mask=mask))
    out_mask = np.asarray(layer.compute_mask(padded, mask))
    expected_lengths = [int(np.ceil(np.ceil(n / 2) / 2)) for n in lengths]
    assert out.shape == (2, 10, 8)
    np.testing.assert_array_equal(out_mask.sum(1), expected_lengths)
    for b, n in enumerate(lengths):
        alone = np.asarray(layer(features[b:b + 1, :n]))
        np.testing.assert_allclose(out[b, :expected_lengths[b]], alone[0], atol=1e-5)


def test_keras_mask_flows_through():
    features = keras.Input((None, 10))
    masked = keras.layers.Masking(0.0)(features)
    layer = ConvSubsampling(d_model=8)
    pooled = keras.layers.GlobalAveragePooling1D()(layer(masked))
    model = keras.Model(features, pooled)
    x = np.random.default_rng(1).normal(size=(1, 16, 10)).astype("float32")
    x_padded = np.concatenate([x, np.zeros((1, 8, 10), "float32")], axis=1)
    np.testing.assert_allclose(model(x_padded), model(x), atol=1e-5)


def test_bad_configuration_is_named():
    with pytest.raises(ValueError, match="d_model=0"):
        ConvSubsampling(d_model=0)
    with pytest.raises(ValueError, match=r"\(B, F, M\)"):
        ConvSubsampling(d_model=8)(np.zeros((2, 8), "float32"))


def test_an_empty_batch_gives_an_empty_result_eagerly_and_traced():
    layer = ConvSubsampling(d_model=16, filters=4)
    assert tuple(layer(np.zeros((0, 50, 40), "float32")).shape) == (0, 13, 16)
    traced = tf.function(lambda x, m: layer(x, mask=m), input_signature=[
        tf.TensorSpec([None, None, 40]), tf.TensorSpec([None, None], tf.bool)])
    assert tuple(traced(np.zeros((0, 7, 40), "float32"), np.zeros((0, 7), bool)).shape) == (
        0, 2, 16)
    features = np.random.default_rng(0).normal(size=(2, 7, 40)).astype("float32")
    np.testing.assert_allclose(traced(features, np.ones((2, 7), bool)), layer(features),
                               atol=1e-6)
