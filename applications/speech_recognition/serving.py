"""The served recognizer: WAV bytes or waveforms in, transcripts out.

`serving_default(audio_bytes: string [B]) -> {transcript: string [B]}`
decodes WAV (any channel count and sample rate: mono mixdown and resampling
in the graph), computes log-mel features, runs the encoder (chunk by chunk
when a clip is longer than one chunk: memory linear in the clip's length)
and decodes CTC. `waveform(waveform:
float32 [B, samples], sample_rate: int32 []) -> {transcript}` takes raw
samples in [-1, 1]. WAV files may hold PCM of 8, 16, 24 or 32 bits or float
of 32 or 64 bits, with plain or extensible headers (`tfformer.wav`). Bytes that
are not readable audio fail the request with an error that names the problem
("not a WAV file ...", "unsupported WAV encoding ...", NaN samples), as does a
`sample_rate` that is not positive; clips whose peak is below
`silence_threshold` (including empty ones) give an empty transcript, and an
empty batch an empty result. Every export carries TF Serving warm-up requests
for each signature.

A model that can stream (truncated attention, global feature normalisation:
`live_stream.streaming_refusal`) also serves live audio, its state travelling with each
request (`live_stream.py` lists the `state_*` tensors):
`stream_start(sample_rate: int32 [B]) -> {state_*}` starts B streams (the rate must be the
model's), and `stream_step(waveform: float32 [B, n], final: bool [B], state_*...) ->
{transcript: string [B], state_*...}` takes each stream's next n samples (any n, 0
included) and returns its transcript so far, which only grows. `final` flushes the
look-ahead; the state returned for a final stream is a new stream's. The stream decodes
greedily; its transcript equals the whole clip's greedy transcript (the `waveform`
signature's when `beam_size` is 1). The export's `constants["sample_rate"]` tells Python
clients the model's rate.
"""

import numpy as np
import tensorflow as tf

from applications.common.empty_batches import answer_empty_batches
from applications.speech_recognition import data
from applications.speech_recognition.decoding import (
    append_symbols,
    check_decoding,
    ctc_decode,
    ctc_greedy_continue,
    lexicon_table,
)
from applications.speech_recognition.features import FrontEnd, decode_wav, resample
from applications.speech_recognition.live_stream import (
    STATE_NAMES,
    STATE_SPECS,
    LiveStream,
    streaming_refusal,
)
from applications.speech_recognition.streaming import chunked_logits
from tfformer.export import export_saved_model
from tfformer.layers import ConvSubsampling


class SpeechServer(tf.Module):
    """`lexicon`: the words decoding may produce (with `config.lexicon_decoding`)."""

    def __init__(self, model, vocabulary, config, lexicon=None):
        super().__init__(name="speech_recognition")
        check_decoding(config.beam_size, lexicon is not None)
        self.model = model
        self.vocabulary = tf.constant(list(vocabulary))
        self.lexicon = None if lexicon is None else lexicon_table(lexicon)
        self.front_end = FrontEnd(config)
        self.sample_rate = config.sample_rate
        self.beam_size = config.beam_size
        self.separator = data.symbol_separator(config.output_units)
        self.silence_threshold = config.silence_threshold
        self.chunk_frames = config.chunk_frames
        self.streaming_refusal = streaming_refusal(model)
        # Any number unlikely to repeat: it tells this export's stream states from another's.
        fingerprint = np.random.default_rng().integers(1, 2**62)
        self.live = (None if self.streaming_refusal
                     else LiveStream(model, self.front_end, fingerprint))

    def logits(self, waveforms, sample_counts):
        """(B, N) zero-padded waveforms at the model's rate -> (logits, logit lengths)."""
        features, frames = self.front_end(waveforms, sample_counts)
        inputs = {"features": features, "feature_lengths": frames}
        if self.model.window is None:
            logits = self.model(inputs)
        else:  # chunks (exactly equal) only where a clip is longer than one
            logits = tf.cond(
                ConvSubsampling.output_lengths(tf.shape(features)[1]) <= self.chunk_frames,
                lambda: self.model(inputs),
                lambda: chunked_logits(self.model, features, frames, self.chunk_frames))
        return logits, self.model.logit_lengths(frames)

    def transcribe(self, waveforms, sample_counts):
        """(B, N) zero-padded waveforms at the model's rate -> {"transcript": string [B]}."""
        return answer_empty_batches(self._transcribe, waveforms, sample_counts)

    def _transcribe(self, waveforms, sample_counts):
        logits, lengths = self.logits(waveforms, sample_counts)
        transcripts = ctc_decode(logits, lengths, self.vocabulary, self.beam_size,
                                 self.separator, self.lexicon)
        positions = tf.range(tf.shape(waveforms)[1])[None, :]
        valid = positions < tf.cast(sample_counts, tf.int32)[:, None]
        peak = tf.reduce_max(tf.where(valid, tf.abs(waveforms), 0.0), axis=1)
        silent = peak < self.silence_threshold
        return {"transcript": tf.where(silent, tf.constant(""), transcripts)}

    @tf.function(autograph=False,
                 input_signature=[tf.TensorSpec([None], tf.string, name="audio_bytes")])
    def serve(self, audio_bytes):
        clips = tf.map_fn(lambda b: decode_wav(b, self.sample_rate), audio_bytes,
                          fn_output_signature=tf.RaggedTensorSpec([None], tf.float32))
        return self.transcribe(clips.to_tensor(), clips.row_lengths())

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform"),
                                  tf.TensorSpec([], tf.int32, name="sample_rate")],
                 autograph=False)
    def serve_waveform(self, waveform, sample_rate):
        rate_check = tf.debugging.assert_positive(
            sample_rate, message="sample_rate must be a positive number of samples per second")
        waveform = tf.debugging.assert_all_finite(waveform, "waveform holds NaN or infinite samples")
        with tf.control_dependencies([rate_check]):
            waveform = tf.identity(waveform)
        waveform = tf.cond(
            tf.equal(sample_rate, self.sample_rate), lambda: waveform,
            lambda: tf.map_fn(lambda w: resample(w, sample_rate, self.sample_rate), waveform))
        counts = tf.fill(tf.shape(waveform)[:1], tf.shape(waveform)[1])
        return self.transcribe(waveform, counts)

    @tf.function(autograph=False,
                 input_signature=[tf.TensorSpec([None], tf.int32, name="sample_rate")])
    def stream_start(self, sample_rate):
        """The state of B new streams of audio at `sample_rate` (B,), which must be the
        model's."""
        rate = self.sample_rate
        check = tf.debugging.Assert(tf.reduce_all(tf.equal(sample_rate, rate)), [
            (f"this model streams audio at {rate} Hz only: resample the stream to {rate} Hz "
             "before sending it; sample_rate was"), sample_rate])
        with tf.control_dependencies([check]):
            return self.live.start(tf.shape(sample_rate)[0])

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform"),
                                  tf.TensorSpec([None], tf.bool, name="final"), *STATE_SPECS],
                 autograph=False)
    def stream_step(self, waveform, final, *state):
        """The next `waveform` samples (B, n) of B streams, any n, 0 included -> the transcript
        so far (B,) and the next state. `final` (B,) ends a stream: its look-ahead is flushed
        and the state returned for it is a new stream's."""
        batch = tf.shape(waveform)[0]
        batch_check = tf.debugging.Assert(tf.equal(tf.shape(final)[0], batch), [
            "waveform and final must have one row per stream; waveform has", batch,
            "rows, final", tf.shape(final)[0]])
        with tf.control_dependencies([batch_check]):
            waveform = tf.debugging.assert_all_finite(
                waveform, "waveform holds NaN or infinite samples")
        state = self.live.check_state(batch, dict(zip(STATE_NAMES, state)))
        logits, counts, stepped = self.live.step(waveform, final, state)
        symbols, stepped["state_last_symbol"] = ctc_greedy_continue(
            logits, counts, state["state_last_symbol"])
        stepped["state_text"] = append_symbols(state["state_text"], symbols, self.vocabulary,
                                               self.separator)
        silent = stepped["state_peak"] < self.silence_threshold
        transcript = tf.where(silent, tf.constant(""), stepped["state_text"])
        return {"transcript": transcript, **self.live.finish(final, stepped)}

    def signatures(self):
        found = {"serving_default": self.serve, "waveform": self.serve_waveform}
        if self.live is not None:
            found.update(stream_start=self.stream_start, stream_step=self.stream_step)
        return found

    def warmup_requests(self):
        """For the whole-clip signatures, a one-second clip alone, then with a clip longer than
        one chunk (so the chunked path runs too); a stream's start, step and final step."""
        rate = self.sample_rate
        frames = ConvSubsampling.factor * self.chunk_frames + 200
        long = np.arange(frames * self.front_end.frame_step) / rate
        long = (0.3 * np.sin(2 * np.pi * 440 * long)).astype(np.float32)
        short = long[:rate]
        clips = [tf.audio.encode_wav(clip[:, None], rate).numpy() for clip in (short, long)]
        padded = np.stack([np.pad(short, (0, len(long) - len(short))), long])
        requests = [("serving_default", {"audio_bytes": clips[:1]}),
                    ("serving_default", {"audio_bytes": clips}),
                    ("waveform", {"waveform": short[None], "sample_rate": np.int32(rate)}),
                    ("waveform", {"waveform": padded, "sample_rate": np.int32(rate)})]
        if self.live is not None:  # 320 ms that start a stream, and 320 ms that are a whole one
            rates = np.full([1], rate, np.int32)
            state = {name: value.numpy() for name, value in
                     self.stream_start(tf.constant(rates)).items()}
            chunk = short[None, :rate * 32 // 100]
            requests += [("stream_start", {"sample_rate": rates}),
                         ("stream_step", {"waveform": chunk, "final": np.array([False]),
                                          **state}),
                         ("stream_step", {"waveform": chunk, "final": np.array([True]),
                                          **state})]
        return requests


def export(server, base_dir):
    return export_saved_model(server, base_dir, server.signatures(),
                              warmup_requests=server.warmup_requests(),
                              constants={"sample_rate": server.sample_rate})
