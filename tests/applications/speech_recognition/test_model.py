"""The recognizer: chunked inference equals whole-clip inference, padding changes nothing,
CTC loss and decoding agree with TensorFlow's, config round trips."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from applications.speech_recognition.config import PRESETS, SpeechRecognitionConfig
from applications.speech_recognition.decoding import ctc_decode, lexicon_table
from applications.speech_recognition.model import SpeechRecognizer, build_recognizer
from applications.speech_recognition.streaming import chunked_logits, context_frames

CONFIG = dataclasses.replace(SpeechRecognitionConfig(**PRESETS["tiny"]), num_layers=2,
                             d_model=32, intermediate_dim=64, window_left=3, window_right=2)
LENGTHS = np.array([203, 150, 9])


def _features(seed=0, frames=203):
    return np.random.default_rng(seed).normal(size=(3, frames, CONFIG.num_mel_bins)).astype(
        "float32")


def _model(position="rotary", normalization="utterance", **changes):
    config = dataclasses.replace(CONFIG, position=position, feature_normalization=normalization,
                                 **changes)
    model = build_recognizer(config, vocabulary_size=12)
    # Non-zero relative biases, so the relative variant is really tested.
    for weight in model.weights:
        if "relative_bias" in weight.path:
            weight.assign(np.random.default_rng(1).normal(size=weight.shape))
    return model


@pytest.mark.parametrize("position, convolution", [("rotary", None), ("relative", None),
                                                   ("rotary", 5)])
@pytest.mark.parametrize("chunk_frames", [1, 5, 64])
def test_chunked_inference_equals_whole_clip_inference(position, convolution, chunk_frames):
    model = _model(position, convolution_kernel_size=convolution)
    features = _features()
    whole = model({"features": features, "feature_lengths": LENGTHS}).numpy()
    chunked = chunked_logits(model, features, LENGTHS, chunk_frames).numpy()
    assert chunked.shape == whole.shape
    lengths = model.logit_lengths(LENGTHS).numpy()
    for row, length in enumerate(lengths):
        np.testing.assert_allclose(chunked[row, :length], whole[row, :length], atol=2e-5)
    vocabulary = tf.constant(list("abcdefghijkl"))
    assert np.array_equal(ctc_decode(whole, lengths, vocabulary).numpy(),
                          ctc_decode(chunked, lengths, vocabulary).numpy())


def test_chunked_inference_inside_a_tf_function_and_with_global_normalization():
    model = _model(normalization="global")
    model.adapt_normalization(tf.data.Dataset.from_tensor_slices(_features(3)).batch(2))
    features = _features(4)
    whole = model({"features": features, "feature_lengths": LENGTHS})
    compiled = tf.function(lambda f, n: chunked_logits(model, f, n, 7))
    np.testing.assert_allclose(compiled(features, LENGTHS)[0], whole[0], atol=2e-5)


def test_output_depends_only_on_the_window_of_context():
    features = _features()
    changed = features.copy()
    changed[0, 120:] += 5.0  # frames from subsampled frame 30 onwards
    lengths = np.array([203, 203, 203])
    # Global statistics keep the change local (utterance normalisation would spread it).
    model = _model(normalization="global")
    model.adapt_normalization(tf.data.Dataset.from_tensor_slices(features).batch(3))
    before = model({"features": features, "feature_lengths": lengths}).numpy()
    after = model({"features": changed, "feature_lengths": lengths}).numpy()
    _, right = context_frames(model)
    unaffected = 30 - right  # outputs that cannot see frame 30
    np.testing.assert_array_equal(before[0, :unaffected], after[0, :unaffected])
    assert not np.allclose(before[0, 30:], after[0, 30:])


def test_padding_changes_nothing_valid():
    model = _model()
    features = _features()
    padded = features.copy()
    padded[1, LENGTHS[1]:] = 77.0
    batch = model({"features": padded, "feature_lengths": LENGTHS}).numpy()
    alone = model({"features": features[1:2, :LENGTHS[1]], "feature_lengths": LENGTHS[1:2]})
    length = int(model.logit_lengths(LENGTHS[1]))
    np.testing.assert_allclose(batch[1, :length], alone.numpy()[0], atol=2e-5)


def test_full_attention_trains_but_cannot_be_chunked():
    model = _model(window_left=None, window_right=None)
    assert model.window is None
    with pytest.raises(ValueError, match="chunked inference needs truncated attention"):
        chunked_logits(model, _features(), LENGTHS, 4)


def test_ctc_loss_is_tensorflows_and_spec_augment_only_acts_in_training():
    model = _model()
    features = _features()
    x = {"features": features, "feature_lengths": LENGTHS}
    labels = np.array([[1, 2, 2, 3], [4, 0, 0, 0], [5, 6, 0, 0]], "int32")
    y = {"labels": labels, "label_lengths": np.array([4, 1, 2])}
    logits = model(x)
    expected = tf.reduce_mean(tf.nn.ctc_loss(
        labels, logits, y["label_lengths"], model.logit_lengths(LENGTHS),
        logits_time_major=False, blank_index=-1))
    np.testing.assert_allclose(model.compute_loss(x, y, logits), expected, rtol=1e-6)
    np.testing.assert_array_equal(model(x, training=False), model(x, training=False))
    model_no_dropout = _model(dropout=0.0)
    assert not np.allclose(model_no_dropout(x, training=True), model_no_dropout(x))


def test_ctc_decode_collapses_repeats_and_blanks():
    blank = 3
    path = [0, 0, blank, 0, 1, 1, blank, blank, 2]
    logits = np.full((2, len(path), 4), -10.0, "float32")
    logits[0, np.arange(len(path)), path] = 10.0
    logits[1, :, blank] = 10.0  # all blank -> empty
    vocabulary = tf.constant(["a", "b", " "])
    for beam in (1, 4):
        text = ctc_decode(logits, [len(path), len(path)], vocabulary, beam).numpy().tolist()
        assert text == [b"aab ", b""]
    words = tf.constant(["one", "two", "oh"])
    for beam in (1, 4):
        text = ctc_decode(logits, [len(path), len(path)], words, beam, separator=" ")
        assert text.numpy().tolist() == [b"one one two oh", b""]


def test_lexicon_decoding_returns_the_best_path_made_of_known_words():
    blank = 3  # vocabulary a, b, c
    probabilities = np.full((2, 2, 4), 1e-4, "float32")
    probabilities[0, 0, [0, blank]] = [0.9, 0.1]
    probabilities[0, 1, [2, 1]] = [0.55, 0.44]  # "ac" beats "ab"
    probabilities[1, 0, 2] = 0.9
    probabilities[1, 1, blank] = 0.9  # "c" beats "" (blank blank)
    logits = np.log(probabilities)
    vocabulary = tf.constant(["a", "b", "c"])
    assert ctc_decode(logits, [2, 2], vocabulary, 4).numpy().tolist() == [b"ac", b"c"]
    lexicon = lexicon_table(["ab", "ba"])
    # Row 0: the second path is a word. Row 1: no path is, and the empty one is never
    # preferred to a better path, so the best path stays.
    assert ctc_decode(logits, [2, 2], vocabulary, 4, lexicon=lexicon).numpy().tolist() == [
        b"ab", b"c"]
    with pytest.raises(ValueError, match="needs beam_size > 1"):
        ctc_decode(logits, [2, 2], vocabulary, 1, lexicon=lexicon)


def test_config_round_trip_and_bad_arguments():
    model = _model(position="relative")
    clone = SpeechRecognizer.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    clone.build()
    clone.set_weights(model.get_weights())
    x = {"features": _features(), "feature_lengths": LENGTHS}
    np.testing.assert_allclose(clone(x), model(x), atol=1e-6)
    with pytest.raises(ValueError, match="position must be one of"):
        SpeechRecognizer(10, 40, position="sinusoidal")
    with pytest.raises(ValueError, match="feature_normalization must be one of"):
        SpeechRecognizer(10, 40, feature_normalization="batch")


def test_keras_save_and_load(tmp_path):
    model = _model()
    x = {"features": _features(), "feature_lengths": LENGTHS}
    path = str(tmp_path / "speech.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
