"""The in-graph WAV decoder against reference decodes: Python's `wave` module for PCM, numpy
for float and hand-built headers (WAVE_FORMAT_EXTENSIBLE, extra chunks, stream headers)."""

import numpy as np
import pytest
import tensorflow as tf

from tests.support.wav_files import ENCODINGS, encode, fmt, riff
from tfformer.wav import decode_wav, error_reason

RATE = 11025
traced_decode = tf.function(decode_wav, input_signature=[tf.TensorSpec([], tf.string)])


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("channels", [1, 2, 3])
def test_every_encoding_equals_the_reference_decode(encoding, channels):
    rng = np.random.default_rng(channels)
    waveform = rng.uniform(-1, 1, size=(257, channels))
    waveform[:4] = [[-1.0] * channels, [1.0] * channels, [0.0] * channels, [-0.5] * channels]
    contents, reference = encode(waveform, RATE, encoding)
    for decode in (decode_wav, traced_decode):
        decoded, rate = decode(contents)
        assert int(rate) == RATE
        np.testing.assert_allclose(decoded.numpy(), reference, atol=1e-6, rtol=0)


def test_odd_chunks_a_stream_header_and_a_partial_frame():
    contents, reference = encode(np.linspace(-1, 1, 100).reshape(50, 2), RATE, "pcm24")
    data = contents[44:]
    header = fmt(1, 2, 24, RATE)
    # A LIST chunk of odd size before 'fmt ' (padded to even) and a 'data' size that claims
    # more than the file holds, as a recorder writes before it knows the length.
    odd = riff(header, data, before=[(b"LIST", b"INFOabc")], data_size=0xFFFFFFFF)
    np.testing.assert_allclose(decode_wav(odd)[0].numpy(), reference, atol=1e-6, rtol=0)
    # A trailing partial frame is dropped.
    assert decode_wav(riff(header, data + b"\x01\x02"))[0].shape == (50, 2)


def test_equals_tensorflow_decode_wav_on_its_own_files():
    samples = np.linspace(-1, 1, 64, dtype=np.float32).reshape(32, 2)
    encoded = tf.audio.encode_wav(samples, 16000)
    waveform, rate = traced_decode(encoded)
    np.testing.assert_array_equal(waveform, tf.audio.decode_wav(encoded)[0])
    assert int(rate) == 16000


@pytest.mark.parametrize("contents,message", [
    (b"", "not a WAV file"),
    (b"ID3 this is an mp3, honestly", "RIFF/WAVE header; it begins with ID3 this is"),
    (b"RIFF\x04\0\0\0WAVE", "no fmt chunk"),
    (riff(fmt(1, 1, 16, RATE), b"")[:36], "no data chunk"),
    (riff(fmt(6, 1, 8, RATE), b"\x55" * 10), "unsupported WAV encoding: format tag 6 with 8 bits"),  # A-law
    (riff(fmt(1, 1, 12, RATE), b"\0" * 10), "unsupported WAV encoding"),
    (riff(fmt(1, 0, 16, RATE), b"\0" * 10), "0 channels"),
    (riff(fmt(1, 1, 16, 0), b"\0" * 10), "sample rate is 0"),
    (riff(fmt(3, 1, 32, RATE), np.array([0.5, np.nan], np.float32).tobytes()), "NaN or infinite"),
], ids=["empty", "mp3", "no-fmt", "no-data", "a-law", "12-bit", "no-channels", "rate-0", "nan"])
def test_what_is_not_readable_audio_gets_a_named_error(contents, message):
    for decode in (decode_wav, traced_decode):
        with pytest.raises(tf.errors.InvalidArgumentError) as caught:
            decode(tf.constant(contents))
        reason = error_reason(caught.value)  # the message, without TensorFlow's framing
        assert message in reason and "node" not in reason and "Expected" not in reason


def test_binary_that_is_not_audio_gets_a_readable_message():
    mp3 = b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x64" + bytes(range(256))
    for decode in (decode_wav, traced_decode):
        with pytest.raises(tf.errors.InvalidArgumentError) as caught:
            decode(tf.constant(mp3))
        assert "it begins with ID3?????????" in error_reason(caught.value)
