"""The audio front end shared by tf.data and the served signatures: WAV bytes to log-mel frames.

decode_wav -> mono float32 at the model's rate -> (padded batch) -> log-mel
features (B, F, M) and frame counts (B,). Normalisation and SpecAugment live
in the model, so training, evaluation and serving run the same code.
"""

import math

import tensorflow as tf

from tfformer import wav
from tfformer.layers import LogMelSpectrogram

RESAMPLING_HALF_WIDTH = 32  # taps each side of the anti-aliasing filter


def resample(waveform, rate_in, rate_out):
    """Resample a mono waveform [samples] from `rate_in` to `rate_out` (scalars, may be tensors).

    Written by hand because TensorFlow core has no resampler (tensorflow-io's
    is not built for TF 2.21): a Hann-windowed sinc low-pass at the lower
    Nyquist frequency (an identity when upsampling), then linear
    interpolation at the new sample times.
    """
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    rate_in = tf.cast(rate_in, tf.float32)
    rate_out = tf.cast(rate_out, tf.float32)
    cutoff = 0.5 * tf.minimum(1.0, rate_out / rate_in)  # cycles per input sample
    offsets = tf.range(-RESAMPLING_HALF_WIDTH, RESAMPLING_HALF_WIDTH + 1, dtype=tf.float32)
    window = 0.5 + 0.5 * tf.cos(math.pi * offsets / (RESAMPLING_HALF_WIDTH + 1))
    taps = 2 * cutoff * _sinc(2 * cutoff * offsets) * window
    taps = taps / tf.reduce_sum(taps)
    filtered = tf.nn.conv1d(waveform[None, :, None], taps[:, None, None], 1, "SAME")[0, :, 0]
    count = tf.cast(tf.math.floor(tf.cast(tf.size(waveform), tf.float32) * rate_out / rate_in),
                    tf.int32)
    times = tf.cast(tf.range(count), tf.float32) * rate_in / rate_out  # in input samples
    left = tf.minimum(tf.cast(tf.floor(times), tf.int32), tf.maximum(tf.size(waveform) - 1, 0))
    right = tf.minimum(left + 1, tf.maximum(tf.size(waveform) - 1, 0))
    fraction = times - tf.cast(left, tf.float32)
    return (tf.gather(filtered, left) * (1 - fraction)
            + tf.gather(filtered, right) * fraction)


def _sinc(x):
    safe = tf.where(tf.equal(x, 0.0), tf.ones_like(x), x)
    return tf.where(tf.equal(x, 0.0), tf.ones_like(x), tf.sin(math.pi * safe) / (math.pi * safe))


def to_model_rate(waveform, rate, sample_rate):
    """Mono-mix a [samples, channels] waveform and resample it to `sample_rate` when needed."""
    mono = tf.reduce_mean(tf.convert_to_tensor(waveform, tf.float32), axis=-1)
    return tf.cond(tf.equal(tf.cast(rate, tf.int32), sample_rate),
                   lambda: mono, lambda: resample(mono, rate, sample_rate))


def decode_wav(audio_bytes, sample_rate):
    """Decode WAV bytes (any channel count; PCM of 8, 16, 24 or 32 bits or float of 32 or 64,
    plain or WAVE_FORMAT_EXTENSIBLE: `tfformer.wav`) to mono float32 [samples] at
    `sample_rate`. Bytes that are not readable audio raise InvalidArgumentError naming the
    problem ("not a WAV file ...", "unsupported WAV encoding ..."), which TF Serving returns
    to the client."""
    waveform, rate = wav.decode_wav(audio_bytes)
    return to_model_rate(waveform, rate, sample_rate)


class FrontEnd:
    """Log-mel features of a padded waveform batch, and their frame counts.

    The waveform batch is zero-padded to at least one frame, so empty clips
    give one (masked) frame instead of an empty tensor.
    """

    def __init__(self, config):
        self.spectrogram = LogMelSpectrogram(
            sample_rate=config.sample_rate, frame_length_ms=config.frame_length_ms,
            frame_step_ms=config.frame_step_ms, num_mel_bins=config.num_mel_bins)
        self.frame_length = self.spectrogram.frame_length
        self.frame_step = self.spectrogram.frame_step

    def frame_counts(self, sample_counts):
        """Frames whose samples are all real: 1 + (n - frame) // step, at least 0."""
        counts = 1 + (tf.cast(sample_counts, tf.int32) - self.frame_length) // self.frame_step
        return tf.maximum(counts, 0)

    def __call__(self, waveforms, sample_counts):
        """waveforms (B, N) float32 zero-padded, sample_counts (B,) -> ((B, F, M), (B,))."""
        waveforms = tf.convert_to_tensor(waveforms, tf.float32)
        short = tf.maximum(self.frame_length - tf.shape(waveforms)[1], 0)
        waveforms = tf.pad(waveforms, [[0, 0], [0, short]])
        return self.spectrogram(waveforms), self.frame_counts(sample_counts)

    def one(self, waveform):
        """A single waveform [N] -> ((F, M), frame count)."""
        features, counts = self(waveform[None, :], tf.shape(waveform)[:1])
        return features[0], counts[0]
