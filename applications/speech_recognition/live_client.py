"""A streaming client of a speech export: audio chunks in, words out as they are recognised.

What `tfformer transcribe --stream` runs, and the loop any TF Serving client (gRPC or REST)
runs: call `stream_start` once, then `stream_step` with each chunk and the `state_*` tensors the
previous call returned, and a last call with `final` set.
"""

import sys

import numpy as np


def export_sample_rate(served):
    """The rate (Hz) a loaded speech export streams at."""
    if "stream_start" not in served.signatures:
        raise ValueError("this export has no stream_start signature: its model cannot stream "
                         "(full attention, or per-utterance feature normalisation); train one "
                         "with window_left/window_right set and feature_normalization=global")
    return int(served.constants["sample_rate"].numpy())


def stream_transcripts(served, chunks, sample_rate):
    """Streams `chunks` (float32 [n] arrays at `sample_rate`, which must be the export's)
    through `served` (a `tf.saved_model.load`ed speech export); yields (seconds of audio sent,
    transcript so far, final) after each call, then after a last, empty call with `final` set
    (which flushes the look-ahead: no chunk waits for the next to know it is the last).

    Ctrl-C ends the stream as its end would, whether it arrives while a chunk is read, while
    one is transcribed, or (thrown in with `.throw(KeyboardInterrupt)`) while the caller
    handles a result: the final call is made with the last complete state, so the words
    heard so far are kept. A Ctrl-C during that final call stops it.
    """
    import tensorflow as tf

    start, step = served.signatures["stream_start"], served.signatures["stream_step"]
    state = start(sample_rate=tf.constant([sample_rate], tf.int32))
    sent, chunks = 0, iter(chunks)
    while True:
        try:
            chunk = next(chunks, None)
            if chunk is None:
                break
            outputs = step(waveform=tf.constant(np.asarray(chunk, np.float32)[None]),
                           final=tf.constant([False]), **state)
            state = {name: value for name, value in outputs.items()
                     if name.startswith("state_")}
            sent += len(chunk)
            yield sent / sample_rate, outputs["transcript"].numpy()[0].decode("utf-8"), False
        except KeyboardInterrupt:
            break
    outputs = step(waveform=tf.zeros([1, 0], tf.float32), final=tf.constant([True]), **state)
    yield sent / sample_rate, outputs["transcript"].numpy()[0].decode("utf-8"), True


def new_words(previous, transcript, final):
    """The words of `transcript` that complete in this call: a word completes when the
    transcript has moved past it (it only grows, so the word will not change), or at the end."""
    def complete(text, ended):
        words = text.split(" ")
        return [word for word in (words if ended else words[:-1]) if word]

    return complete(transcript, final)[len(complete(previous, False)):]


def wav_chunks(path, sample_rate, chunk_seconds):
    """A WAV file's samples (any encoding `tfformer.wav` reads; mono-mixed, resampled to
    `sample_rate`) in chunks of `chunk_seconds`."""
    from applications.speech_recognition.features import decode_wav

    with open(path, "rb") as handle:
        waveform = decode_wav(handle.read(), sample_rate).numpy()
    size = max(1, round(chunk_seconds * sample_rate))
    return (waveform[start:start + size] for start in range(0, len(waveform), size))


def pcm_chunks(stream, sample_rate, chunk_seconds):
    """Raw 16-bit little-endian mono PCM from a binary `stream` (e.g. `arecord -f S16_LE`), in
    chunks of `chunk_seconds`, as float32 in [-1, 1), until the stream ends."""
    size = 2 * max(1, round(chunk_seconds * sample_rate))
    pending = b""
    while True:
        data = stream.read(size - len(pending))
        if not data:
            break
        pending += data
        if len(pending) == size:
            yield np.frombuffer(pending, "<i2").astype(np.float32) / 32768.0
            pending = b""
    whole = len(pending) // 2 * 2  # an odd last byte is half a sample
    if whole:
        yield np.frombuffer(pending[:whole], "<i2").astype(np.float32) / 32768.0


def print_stream(served, source, chunk_ms, output=sys.stdout):
    """Streams a WAV file, or raw PCM from standard input when `source` is "-", printing each
    word with the audio time at which it appeared, then the whole transcript."""
    rate = export_sample_rate(served)
    chunk_seconds = chunk_ms / 1000
    chunks = (pcm_chunks(sys.stdin.buffer, rate, chunk_seconds) if source == "-"
              else wav_chunks(source, rate, chunk_seconds))
    previous = ""
    results = stream_transcripts(served, chunks, rate)
    result = next(results)
    while True:
        seconds, transcript, final = result
        try:
            for word in new_words(previous, transcript, final):
                print(f"{seconds:8.2f} s  {word}", file=output, flush=True)
            previous = transcript
            if final:
                break
            result = next(results)
        except KeyboardInterrupt:  # while a result was printed: the stream ends there
            result = results.throw(KeyboardInterrupt)
    print(f"transcript: {previous}", file=output)
