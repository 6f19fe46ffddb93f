"""Live streaming: a clip fed to `stream_step` in chunks of any sizes gives the whole clip's
logits (within 1e-4) and transcript; the transcript only grows; the state does not grow."""

import dataclasses
import functools
import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from applications.speech_recognition import serving
from applications.speech_recognition.config import PRESETS, SpeechRecognitionConfig
from applications.speech_recognition.decoding import ctc_decode
from applications.speech_recognition.live_stream import STATE_NAMES, LiveStream
from applications.speech_recognition.model import build_recognizer
from applications.speech_recognition.train import train
from tests.support.serving_checks import CARRY_STATE, serve_in_session, signature_names

CONFIG = dataclasses.replace(SpeechRecognitionConfig(**PRESETS["tiny"]), num_layers=2,
                             d_model=32, intermediate_dim=64, window_left=3, window_right=2,
                             chunk_frames=8)
RATE = CONFIG.sample_rate
VOCABULARY = list("abcdefghijkl")


def _server(position="rotary", convolution=None, head_scale=8, **changes):
    config = dataclasses.replace(CONFIG, position=position, convolution_kernel_size=convolution,
                                 **changes)
    keras.utils.set_random_seed(0)
    model = build_recognizer(config, vocabulary_size=len(VOCABULARY))
    rng = np.random.default_rng(1)
    for weight in model.weights:
        if "relative_bias" in weight.path:  # non-zero, so relative positions are really tested
            weight.assign(rng.normal(size=weight.shape))
        if "ctc_head" in weight.path and "kernel" in weight.path:  # symbols change often
            weight.assign(weight.numpy() * head_scale)
    server = serving.SpeechServer(model, VOCABULARY, config)
    if model.normalization is not None:
        features, _ = server.front_end(_waves(4, 8000, seed=9), tf.fill([4], 8000))
        model.adapt_normalization(tf.data.Dataset.from_tensor_slices(features).batch(2))
    return server


@functools.cache
def _shared_server(position, convolution):
    """One server per model for the chunking cases: streams carry their state in their
    inputs, so cases cannot affect each other, and each model is traced once."""
    return _server(position, convolution)


def _waves(batch, samples, seed=0):
    """Tones that change pitch and loudness every 100 ms, over noise: the outputs change."""
    rng = np.random.default_rng(seed)
    time = np.arange(samples) / RATE
    segment = np.arange(samples) // (RATE // 10)
    pitch = rng.uniform(200, 3500, size=(batch, segment[-1] + 1))[:, segment]
    loudness = rng.uniform(0.05, 0.6, size=(batch, segment[-1] + 1))[:, segment]
    waves = loudness * np.sin(2 * np.pi * pitch * time) + 0.02 * rng.normal(size=(batch, samples))
    return waves.astype("float32")


def _start(server, batch):
    return server.stream_start(tf.fill([batch], RATE))


def _step(server, chunk, final, state):
    """One `stream_step` call; returns (transcripts, next state)."""
    final = tf.fill([chunk.shape[0]], final)
    outputs = server.stream_step(tf.constant(chunk), final, *[state[n] for n in STATE_NAMES])
    return outputs["transcript"].numpy().tolist(), {n: outputs[n] for n in STATE_NAMES}


def _cuts(samples, sizes):
    """Chunk boundaries: `sizes` in turn, the rest in the last chunk."""
    bounds, position = [0], 0
    for size in sizes:
        position = min(position + size, samples)
        bounds.append(position)
    return list(zip(bounds, bounds[1:] + [samples]))


HOP = int(RATE * CONFIG.frame_step_ms / 1000)
CHUNKINGS = {
    "whole clip at once": [],
    "1 and 0 samples, sizes that are not multiples of the hop": [1, 0, 333, 0, 79, 81, 1200],
    "hop-sized": [HOP] * 40,
    "random": list(np.random.default_rng(7).integers(0, 900, size=30)),
}


@pytest.mark.parametrize("position, convolution",
                         [("rotary", None), ("relative", None), ("rotary", 5)])
@pytest.mark.parametrize("chunking", list(CHUNKINGS))
def test_streamed_logits_and_transcript_equal_the_whole_clips(position, convolution, chunking):
    server = _shared_server(position, convolution)
    waves = _waves(2, 9000, seed=3)
    whole_logits, lengths = server.logits(tf.constant(waves), tf.fill([2], 9000))
    whole = server.serve_waveform(tf.constant(waves), tf.constant(RATE))["transcript"].numpy()
    assert all(len(text) > 3 for text in whole)

    live, state = server.live, _start(server, 2)
    logits, transcripts = [], []
    cuts = _cuts(9000, CHUNKINGS[chunking])
    for index, (begin, end) in enumerate(cuts):
        final = index == len(cuts) - 1
        chunk = waves[:, begin:end]
        step_logits, counts, _ = live.step(tf.constant(chunk), tf.fill([2], final),
                                           live.check_state(tf.constant(2), state))
        logits.append(step_logits.numpy()[:, :int(counts[0])])
        assert counts.numpy().tolist() == [counts[0]] * 2
        texts, state = _step(server, chunk, final, state)
        transcripts.append(texts)
    streamed = np.concatenate(logits, axis=1)
    assert streamed.shape[1] == lengths[0]
    np.testing.assert_allclose(streamed, whole_logits.numpy()[:, :lengths[0]], atol=1e-4)
    assert transcripts[-1] == whole.tolist()
    for earlier, later in itertools.pairwise(transcripts):  # it only grows
        assert all(b.startswith(a) for a, b in zip(earlier, later))


def test_streams_of_one_batch_may_be_at_different_points():
    """A batch mixes a new stream with one that has run for a while and one that ends."""
    server = _server()
    waves = _waves(3, 6400, seed=4)
    expected = [server.serve_waveform(tf.constant(w[None]), tf.constant(RATE))["transcript"]
                .numpy()[0] for w in waves]
    state = _start(server, 3)
    _, state = _step(server, waves[:, :1000], False, state)  # all three have 1000 samples
    fresh = _start(server, 1)
    state = {name: tf.concat([state[name][:2], fresh[name]], axis=0) for name in STATE_NAMES}
    texts, state = _step(server, waves[:, 1000:], True, state)  # row 2 starts, 1000 in
    assert texts[:2] == expected[:2]
    assert texts[2] == server.serve_waveform(tf.constant(waves[2:, 1000:]), tf.constant(RATE))[
        "transcript"].numpy()[0]
    # A final stream's returned state is a new stream's.
    for name in STATE_NAMES:
        np.testing.assert_array_equal(state[name].numpy(), _start(server, 3)[name].numpy())


def test_the_state_does_not_grow_over_ten_minutes_and_the_transcript_stays_exact():
    server = _server()
    minutes = 10
    rng = np.random.default_rng(5)
    wave = (0.3 * rng.normal(size=(1, minutes * 60 * RATE))).astype("float32")
    state = _start(server, 1)
    shapes = {name: state[name].shape for name in STATE_NAMES}
    step = server.stream_step.get_concrete_function()
    second = RATE
    for begin in range(0, wave.shape[1], second):
        final = tf.constant([begin + second >= wave.shape[1]])
        outputs = step(waveform=tf.constant(wave[:, begin:begin + second]), final=final,
                       **{name: state[name] for name in STATE_NAMES})
        last_state = state
        state = {name: outputs[name] for name in STATE_NAMES}
        assert {name: state[name].shape for name in STATE_NAMES} == shapes
    # 40 ms per output: 15,000 outputs emitted before the final flush.
    assert int(last_state["state_emitted"][0]) > minutes * 60 * 25 - 50
    whole = server.serve_waveform(tf.constant(wave), tf.constant(RATE))["transcript"].numpy()
    assert outputs["transcript"].numpy().tolist() == whole.tolist()


def test_streaming_decodes_greedily_when_whole_clips_use_a_beam():
    """The stream's transcript is the whole clip's greedy one, whatever `beam_size` serves
    whole clips with."""
    server = _server(beam_size=4, head_scale=0.5)  # flat: the beam finds other paths
    waves = _waves(1, 16000, seed=6)
    state = _start(server, 1)
    for begin in range(0, 16000, 700):
        texts, state = _step(server, waves[:, begin:begin + 700], begin + 700 >= 16000, state)
    logits, lengths = server.logits(tf.constant(waves), tf.constant([16000]))
    vocabulary = tf.constant(VOCABULARY)
    greedy = ctc_decode(logits, lengths, vocabulary).numpy().tolist()
    assert texts == greedy
    assert greedy != ctc_decode(logits, lengths, vocabulary, beam_size=4).numpy().tolist()


def test_silence_gives_an_empty_transcript_until_the_stream_is_loud_enough():
    server = _server()
    quiet = np.full((1, 4000), 1e-5, np.float32)
    state = _start(server, 1)
    texts, state = _step(server, quiet, False, state)
    assert texts == [b""]
    loud = _waves(1, 4000, seed=8)
    texts, _ = _step(server, loud, True, state)
    both = np.concatenate([quiet, loud], axis=1)
    assert texts == server.serve_waveform(tf.constant(both), tf.constant(RATE))[
        "transcript"].numpy().tolist()


def test_an_empty_batch_streams_nothing():
    server = _server()
    state = _start(server, 0)
    texts, state = _step(server, np.zeros((0, 500), np.float32), False, state)
    assert texts == [] and state["state_features"].shape[0] == 0


def _error(call):
    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
        call()
    return raised.value.message


def test_bad_streams_and_states_are_refused_naming_the_problem():
    server = _server()
    state = _start(server, 2)
    chunk = _waves(2, 400)
    assert "streams audio at 8000 Hz only" in _error(
        lambda: server.stream_start(tf.constant([RATE, 16000])))
    assert "NaN or infinite" in _error(
        lambda: _step(server, np.full((2, 400), np.nan, np.float32), False, state))
    assert "waveform and final must have one row per stream" in _error(
        lambda: server.stream_step(tf.constant(chunk), tf.constant([False]),
                                   *[state[n] for n in STATE_NAMES]))
    short = dict(state, state_features=state["state_features"][:, :5])
    assert f"state_features must have shape [B {server.live.feature_slots} 40]" in _error(
        lambda: _step(server, chunk, False, short))
    one_row = dict(state, state_text=state["state_text"][:1])
    assert "state_text must have shape [B]" in _error(lambda: _step(server, chunk, False, one_row))
    other = _start(_server(), 2)  # another export of a model with the same shapes
    assert "the state was made by the stream_start of another export" in _error(
        lambda: _step(server, chunk, False, other))
    with pytest.raises((TypeError, ValueError)):  # a state of the wrong dtype
        _step(server, chunk, False, dict(state, state_emitted=tf.zeros([2], tf.float32)))


def test_models_that_cannot_stream_export_without_the_streaming_signatures():
    for changes, reason in [(dict(feature_normalization="utterance"), "known only at its end"),
                            (dict(window_left=None), "full attention")]:
        server = _server(**changes)
        assert set(server.signatures()) == {"serving_default", "waveform"}
        assert reason in server.streaming_refusal
        with pytest.raises(ValueError, match=reason):
            LiveStream(server.model, server.front_end, fingerprint=1)


def test_training_a_model_that_cannot_stream_says_why(tmp_path, capsys):
    config = dataclasses.replace(
        CONFIG, feature_normalization="utterance", builtin_examples=100, num_layers=1,
        epochs=1, steps_per_epoch=2, batch_size=8)
    result = train(config, workdir=str(tmp_path / "run"), export_dir=str(tmp_path / "export"),
                   verbose=0, examples=0)
    assert ("this model cannot stream live audio, so the export has no stream_start and "
            "stream_step signatures: feature_normalization='utterance'") in capsys.readouterr().out
    assert signature_names(result["export_path"]) == {"serving_default", "waveform"}


def test_relative_positions_and_the_convolution_stream_through_tf_servings_loader(tmp_path):
    """In a fresh process with only TensorFlow and tf-text, through the session path: the
    stream's transcript grows into the whole clip's, and the state keeps its shapes."""
    server = _server("relative", 5)
    path = serving.export(server, str(tmp_path))
    waves = _waves(2, 24000, seed=11)  # 3 s
    requests = [("stream_start", {"sample_rate": np.full([2], RATE, np.int32)})]
    bounds = [0, 1, 1, 700, 3001, 9000, 9080, 17000, 24000]
    for begin, end in itertools.pairwise(bounds):
        requests.append(("stream_step", {"waveform": waves[:, begin:end],
                                         "final": np.full([2], end == 24000)}, CARRY_STATE))
    requests.append(("waveform", {"waveform": waves, "sample_rate": np.int32(RATE)}))
    answers = serve_in_session(path, requests)
    texts = [answer["transcript"].tolist() for answer in answers[1:-1]]
    assert texts[-1] == answers[-1]["transcript"].tolist()
    assert all(len(text) > 3 for text in texts[-1])
    for earlier, later in itertools.pairwise(texts):
        assert all(b.startswith(a) for a, b in zip(earlier, later))
    shapes = {name: answers[0][name].shape for name in STATE_NAMES}
    for answer in answers[1:-1]:
        assert {name: answer[name].shape for name in STATE_NAMES} == shapes
