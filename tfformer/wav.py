"""WAV decoding inside the graph, for every common encoding.

`tf.audio.decode_wav` reads 16-bit PCM only, but Audacity, sox and ffmpeg write 8-, 24- and
32-bit PCM, 32- and 64-bit float and `WAVE_FORMAT_EXTENSIBLE` headers for many settings. This
module reads the RIFF chunks with byte ops (`tf.strings.substr`, `tf.io.decode_raw`), so a
served signature decodes all of them with TensorFlow's own ops. Written by hand because no
library does it in the graph: TensorFlow's decoder is 16-bit only and tensorflow-io is not
built for TensorFlow 2.21.

>>> import numpy as np, tensorflow as tf
>>> pcm = tf.audio.encode_wav(np.zeros((4, 2), np.float32), 8000)
>>> waveform, rate = decode_wav(pcm)
>>> waveform.shape, int(rate)
(TensorShape([4, 2]), 8000)
"""

import re

import tensorflow as tf

PCM, IEEE_FLOAT, EXTENSIBLE = 1, 3, 0xFFFE
# (format, bits per sample) in the order of `_DECODERS`.
SUPPORTED = ((PCM, 8), (PCM, 16), (PCM, 24), (PCM, 32), (IEEE_FLOAT, 32), (IEEE_FLOAT, 64))
SUPPORTED_TEXT = "PCM with 8, 16, 24 or 32 bits, or IEEE float with 32 or 64 bits"


def _unsigned(contents, offset, width):
    """The little-endian unsigned integer of `width` (2 or 4) bytes at `offset`, as int64;
    bytes past the end read as zeros."""
    end = tf.cast(tf.strings.length(contents), tf.int64)
    raw = tf.strings.substr(contents, tf.clip_by_value(offset, 0, end), width)
    padded = tf.strings.join([raw, tf.constant(b"\0" * 8)])
    return tf.io.decode_raw(tf.strings.substr(padded, 0, 8), tf.int64)[0]


def _printable(raw):
    """Bytes as text fit for an error message: printable ASCII kept, anything else as "?"
    (raw bytes would make the message invalid UTF-8)."""
    codes = tf.cast(tf.io.decode_raw(raw, tf.uint8), tf.int32)
    codes = tf.where(tf.logical_and(codes >= 32, codes < 127), codes, ord("?"))
    return tf.strings.unicode_encode(codes, "UTF-8")


def _find_chunks(contents, length):
    """Offsets and sizes of the `fmt ` and `data` chunks' bodies (-1 where missing)."""

    def searching(offset, fmt, fmt_size, data, data_size):
        return tf.logical_and(offset + 8 <= length, tf.logical_or(fmt < 0, data < 0))

    def step(offset, fmt, fmt_size, data, data_size):
        chunk = tf.strings.substr(contents, offset, 4)
        size = _unsigned(contents, offset + 4, 4)
        is_fmt = tf.logical_and(tf.equal(chunk, "fmt "), fmt < 0)
        is_data = tf.logical_and(tf.equal(chunk, "data"), data < 0)
        fmt, fmt_size = tf.where(is_fmt, offset + 8, fmt), tf.where(is_fmt, size, fmt_size)
        data, data_size = tf.where(is_data, offset + 8, data), tf.where(is_data, size, data_size)
        return offset + 8 + size + size % 2, fmt, fmt_size, data, data_size  # chunks are even

    missing = tf.constant(-1, tf.int64)
    _, fmt, fmt_size, data, data_size = tf.while_loop(
        searching, step, (tf.constant(12, tf.int64), missing, missing, missing, missing))
    return fmt, fmt_size, data, data_size


def _pcm24(raw):
    bytes_ = tf.reshape(tf.cast(tf.io.decode_raw(raw, tf.uint8), tf.int32), (-1, 3))  # (N, 3)
    value = bytes_[:, 0] + bytes_[:, 1] * 256 + bytes_[:, 2] * 65536
    value = tf.where(value >= 1 << 23, value - (1 << 24), value)  # two's complement
    return tf.cast(value, tf.float32) / float(1 << 23)


_DECODERS = (
    lambda raw: (tf.cast(tf.io.decode_raw(raw, tf.uint8), tf.float32) - 128.0) / 128.0,
    lambda raw: tf.cast(tf.io.decode_raw(raw, tf.int16), tf.float32) / 32768.0,
    _pcm24,
    lambda raw: tf.cast(tf.io.decode_raw(raw, tf.int32), tf.float32) / float(1 << 31),
    lambda raw: tf.io.decode_raw(raw, tf.float32),
    lambda raw: tf.cast(tf.io.decode_raw(raw, tf.float64), tf.float32),
)


def decode_wav(contents):
    """Decodes one WAV file's bytes.

    Reads RIFF/WAVE files in PCM (8-bit unsigned, 16-, 24- and 32-bit signed) and IEEE float
    (32- and 64-bit), with a plain or a `WAVE_FORMAT_EXTENSIBLE` header, any channel count;
    other chunks (`LIST`, `fact`, ...) are skipped, and a `data` chunk that claims more bytes
    than the file holds (a stream's header) is read to the end of the file.

    Args:
        contents: string scalar, the file's bytes.

    Returns:
        `(waveform, sample_rate)`: float32 (samples, channels) scaled to [-1, 1] (float files
        as stored), and the sample rate as an int32 scalar.

    Raises:
        tf.errors.InvalidArgumentError, naming the problem: not a RIFF/WAVE file, no `fmt ` or
        `data` chunk, zero channels, a sample rate of 0, an encoding other than the above
        (A-law, mu-law, ADPCM, ...), or NaN or infinite samples.
    """
    contents = tf.convert_to_tensor(contents, tf.string)
    length = tf.cast(tf.strings.length(contents), tf.int64)
    header = tf.strings.substr(tf.strings.join([contents, tf.constant(b"\0" * 12)]), 0, 12)
    is_wave = tf.logical_and(tf.equal(tf.strings.substr(header, 0, 4), "RIFF"),
                             tf.equal(tf.strings.substr(header, 8, 4), "WAVE"))
    check_header = tf.debugging.Assert(
        tf.logical_and(length >= 12, is_wave),
        ["not a WAV file: it does not begin with a RIFF/WAVE header; it begins with",
         _printable(tf.strings.substr(contents, 0, 12))])
    with tf.control_dependencies([check_header]):
        fmt, fmt_size, data, data_size = _find_chunks(contents, length)
    check_chunks = [
        tf.debugging.Assert(fmt >= 0, ["WAV file has no fmt chunk"]),
        tf.debugging.Assert(tf.logical_and(fmt_size >= 16, fmt + 16 <= length),
                            ["WAV file ends inside its fmt chunk"]),
        tf.debugging.Assert(data >= 0, ["WAV file has no data chunk"])]
    with tf.control_dependencies(check_chunks):
        encoding = _unsigned(contents, fmt, 2)
        channels = _unsigned(contents, fmt + 2, 2)
        rate = _unsigned(contents, fmt + 4, 4)
        bits = _unsigned(contents, fmt + 14, 2)
    encoding = tf.where(tf.logical_and(tf.equal(encoding, EXTENSIBLE), fmt_size >= 26),
                        _unsigned(contents, fmt + 24, 2), encoding)  # the sub-format GUID
    matches = [tf.logical_and(tf.equal(encoding, e), tf.equal(bits, b)) for e, b in SUPPORTED]
    decoder = tf.argmax(tf.cast(tf.stack(matches), tf.int32), output_type=tf.int32)
    check_format = [
        tf.debugging.Assert(channels > 0, ["WAV file says it has 0 channels"]),
        tf.debugging.Assert(rate > 0, ["WAV file says its sample rate is 0"]),
        tf.debugging.Assert(tf.reduce_any(matches), [
            "unsupported WAV encoding: format tag", encoding, "with", bits,
            "bits per sample; supported: " + SUPPORTED_TEXT])]
    with tf.control_dependencies(check_format):
        frame_bytes = channels * (bits // 8)
        available = tf.minimum(data_size, tf.maximum(length - data, 0))
        raw = tf.strings.substr(contents, data, available - available % frame_bytes)
    samples = tf.switch_case(decoder, [lambda f=f: f(raw) for f in _DECODERS])
    samples = tf.debugging.assert_all_finite(samples, "WAV file holds NaN or infinite samples")
    return tf.reshape(samples, (-1, tf.cast(channels, tf.int32))), tf.cast(rate, tf.int32)


def problem(contents):
    """Why `decode_wav` refuses `contents`, as a string scalar, computed without raising:
    the same checks, for naming a bad file in a log. An empty string when the header is
    readable (the samples may still be NaN).

    >>> problem(b"fLaC....").numpy()
    b'a FLAC file: convert it to WAV'
    """
    contents = tf.convert_to_tensor(contents, tf.string)
    length = tf.cast(tf.strings.length(contents), tf.int64)
    header = tf.strings.substr(tf.strings.join([contents, tf.constant(b"\0" * 12)]), 0, 12)
    is_wave = tf.logical_and(tf.equal(tf.strings.substr(header, 0, 4), "RIFF"),
                             tf.equal(tf.strings.substr(header, 8, 4), "WAVE"))

    def not_wave():
        return tf.where(
            tf.equal(length, 0), "the file is empty",
            tf.where(tf.equal(tf.strings.substr(header, 0, 4), "fLaC"),
                     "a FLAC file: convert it to WAV",
                     tf.strings.join(["not a WAV file: it begins with ",
                                      _printable(tf.strings.substr(contents, 0, 12))])))

    def chunks():
        fmt, fmt_size, data, _ = _find_chunks(contents, length)
        encoding = _unsigned(contents, tf.maximum(fmt, 0), 2)
        encoding = tf.where(tf.logical_and(tf.equal(encoding, EXTENSIBLE), fmt_size >= 26),
                            _unsigned(contents, tf.maximum(fmt, 0) + 24, 2), encoding)
        bits = _unsigned(contents, tf.maximum(fmt, 0) + 14, 2)
        supported = tf.reduce_any([tf.logical_and(tf.equal(encoding, e), tf.equal(bits, b))
                                   for e, b in SUPPORTED])
        found = [
            (fmt < 0, "WAV file has no fmt chunk"),
            (tf.logical_or(fmt_size < 16, fmt + 16 > length), "WAV file ends inside its fmt "
             "chunk"),
            (data < 0, "WAV file has no data chunk"),
            (tf.equal(_unsigned(contents, tf.maximum(fmt, 0) + 2, 2), 0),
             "WAV file says it has 0 channels"),
            (tf.equal(_unsigned(contents, tf.maximum(fmt, 0) + 4, 4), 0),
             "WAV file says its sample rate is 0"),
            (tf.logical_not(supported), tf.strings.format(
                "unsupported WAV encoding: format tag {} with {} bits per sample", (encoding,
                                                                                   bits)))]
        reason = tf.constant("")
        for failed, text in reversed(found):
            reason = tf.where(failed, text, reason)
        return reason

    return tf.cond(tf.logical_and(length >= 12, is_wave), chunks, not_wave)


def error_reason(error):
    """The readable reason in a decoding error's message, without TensorFlow's node trace:
    `assertion failed: [not a WAV file: ...] [b'ID3 ...']` -> `not a WAV file: ... b'ID3 ...'`."""
    message = getattr(error, "message", str(error))
    found = re.search(r"assertion failed: \[(.*)\]", message)  # traced
    if found:
        return " ".join(found[1].split("] ["))
    if "Summarized data: " in message:  # eager
        items = message.split("Summarized data: ", 1)[1].splitlines()
        return " ".join(re.sub(r"^b'(.*)'$", r"\1", item.strip()) for item in items)
    found = re.search(r"(WAV file holds NaN or infinite samples)", message)
    return found[1] if found else message.strip().splitlines()[-1]
