"""WAV files of every common encoding, and what a reference decoder reads from them.

PCM files are written and read back by Python's `wave` module; float and
WAVE_FORMAT_EXTENSIBLE files, which `wave` does not write, are built from their RIFF chunks.
"""

import io
import struct
import wave

import numpy as np

ENCODINGS = ["pcm8", "pcm16", "pcm24", "pcm32", "float32", "float64", "extensible_pcm24",
             "extensible_float32"]
_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")  # KSDATAFORMAT_SUBTYPE_*


def riff(fmt_body, data, before=(), after=(), data_size=None):
    """A RIFF/WAVE file from a 'fmt ' body, sample bytes and extra (id, body) chunks."""
    def chunk(name, body, size=None):
        size = len(body) if size is None else size
        return name + struct.pack("<I", size) + body + b"\0" * (len(body) % 2)
    chunks = b"".join(chunk(n, b) for n, b in before) + chunk(b"fmt ", fmt_body)
    chunks += b"".join(chunk(n, b) for n, b in after) + chunk(b"data", data, data_size)
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def fmt(tag, channels, bits, rate, extensible_tag=None):
    """A 'fmt ' chunk body; with `extensible_tag`, WAVE_FORMAT_EXTENSIBLE around that format."""
    block = channels * bits // 8
    body = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    if extensible_tag is not None:  # cbSize, valid bits, channel mask, sub-format GUID
        body += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", extensible_tag) + _GUID_TAIL
    return body


def _pcm_bytes(waveform, width):
    scaled = np.clip(np.round(waveform * 2.0 ** (8 * width - 1)),
                     -(2 ** (8 * width - 1)), 2 ** (8 * width - 1) - 1).astype(np.int64)
    if width == 1:
        return (scaled + 128).astype(np.uint8).tobytes()
    if width == 3:
        little = scaled.ravel() & 0xFFFFFF
        triples = np.stack([little & 0xFF, little >> 8 & 0xFF, little >> 16], axis=1)
        return triples.astype(np.uint8).tobytes()
    return scaled.astype(f"<i{width}").tobytes()


def _read_pcm(raw, width):
    if width == 1:
        return (np.frombuffer(raw, np.uint8).astype(np.float64) - 128) / 128
    if width == 3:
        triples = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int64)
        value = triples[:, 0] | triples[:, 1] << 8 | triples[:, 2] << 16
        return np.where(value >= 2**23, value - 2**24, value) / 2**23
    return np.frombuffer(raw, f"<i{width}") / 2.0 ** (8 * width - 1)


def encode(waveform, rate, encoding):
    """`waveform` float (frames, channels) in [-1, 1] as WAV bytes of `encoding`; returns
    `(bytes, reference)`, the reference being float64 (frames, channels) as a reference
    decoder reads the file (PCM: `wave`'s frames scaled to [-1, 1])."""
    waveform = np.asarray(waveform, np.float64)
    frames, channels = waveform.shape
    kind = encoding.replace("extensible_", "")
    if kind.startswith("float"):
        bits = int(kind[5:])
        data = waveform.astype(f"<f{bits // 8}").tobytes()
        tag = (0xFFFE, 3) if encoding.startswith("extensible") else (3, None)
        return (riff(fmt(tag[0], channels, bits, rate, tag[1]), data, after=[
            (b"fact", struct.pack("<I", frames))]), waveform.astype(f"<f{bits // 8}"))
    width = int(kind[3:]) // 8
    data = _pcm_bytes(waveform, width)
    if encoding.startswith("extensible"):
        contents = riff(fmt(0xFFFE, channels, 8 * width, rate, 1), data)
        return contents, _read_pcm(data, width).reshape(frames, channels)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(data)
    with wave.open(io.BytesIO(buffer.getvalue()), "rb") as reader:
        assert (reader.getframerate(), reader.getnchannels()) == (rate, channels)
        raw = reader.readframes(reader.getnframes())
    return buffer.getvalue(), _read_pcm(raw, width).reshape(frames, channels)
