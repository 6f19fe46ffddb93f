import numpy as np
import pytest
import tensorflow as tf

from tfformer.layers import LogMelSpectrogram


def test_equals_tf_signal_computed_directly():
    rate = 8000
    t = np.arange(rate) / rate
    wave = (0.5 * np.sin(2 * np.pi * 440 * t)).astype("float32")[None]
    layer = LogMelSpectrogram(sample_rate=rate, num_mel_bins=20)
    stft = tf.signal.stft(wave, 200, 80, 256)
    matrix = tf.signal.linear_to_mel_weight_matrix(20, 129, rate, 20.0, rate / 2)
    expected = np.log(np.tensordot(np.abs(stft.numpy()) ** 2, matrix.numpy(), 1) + 1e-6)
    np.testing.assert_allclose(layer(wave), expected, atol=1e-4)
    # A 440 Hz tone puts most energy in the same mel bin in every frame.
    assert len(set(np.argmax(np.asarray(layer(wave))[0], axis=-1))) == 1


def test_frame_mask_marks_frames_inside_the_real_samples():
    layer = LogMelSpectrogram(sample_rate=16000)
    sample_mask = np.arange(16000)[None, :] < np.array([[16000], [8000]])
    frames = np.asarray(layer.compute_mask(np.zeros((2, 16000), "float32"), sample_mask))
    assert frames.shape == (2, 98)
    assert frames[0].sum() == 98
    assert frames[1].sum() == 1 + (8000 - 400) // 160
    padded = np.random.default_rng(0).normal(size=(2, 16000)).astype("float32")
    out = np.asarray(layer(padded, mask=sample_mask))
    alone = np.asarray(layer(padded[1:, :8000]))
    np.testing.assert_allclose(out[1, :frames[1].sum()], alone[0], atol=1e-4)


def test_bad_edges_are_named():
    with pytest.raises(ValueError, match="upper_edge_hertz=9000"):
        LogMelSpectrogram(sample_rate=16000, upper_edge_hertz=9000)


def test_frame_mask_flows_in_a_functional_model():
    import keras

    waveforms = keras.Input((None,))
    sample_mask = keras.Input((None,), dtype="bool")
    features = LogMelSpectrogram(sample_rate=8000, num_mel_bins=16)(waveforms, mask=sample_mask)
    pooled = keras.layers.GlobalAveragePooling1D()(features)
    model = keras.Model([waveforms, sample_mask], pooled)
    wave = np.random.default_rng(3).normal(size=(1, 4000)).astype("float32")
    padded = np.concatenate([wave, np.ones((1, 1000), "float32")], axis=1)
    mask = np.arange(5000)[None, :] < 4000
    np.testing.assert_allclose(model([padded, mask]), model([wave, np.ones((1, 4000), bool)]),
                               atol=1e-4)
