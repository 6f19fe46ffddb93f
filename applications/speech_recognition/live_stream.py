"""Live streaming: audio arrives in chunks, CTC logits come out as soon as their context has.

A served stream is stateless between calls, so everything a stream has not finished with
travels in a fixed-size state (the `state_*` tensors of the `stream_step` signature):

    state_samples       (B, frame_length) float32  samples not yet framed, left-aligned
    state_sample_count  (B,) int32                 how many of them are real
    state_features      (B, 4 (l + r + 1), M)      normalised log-mel frames: the left context
                                                   of the next output, then frames waiting for
                                                   their right context
    state_feature_count (B,) int32                 how many of them are real
    state_emitted       (B,) int32                 outputs emitted so far
    state_last_symbol   (B,) int32                 the CTC greedy decoder's previous frame
    state_text          (B,) string                the transcript so far
    state_peak          (B,) float32               the loudest sample so far (silence check)
    state_model         (B,) int64                 which export made the state

where (l, r) = `context_frames(model)`: the subsampled frames of context one output needs.
Outputs [a, a + C) are computed from feature frames [4 (a - l), 4 (a + C + r)), exactly the
windows `chunked_logits` computes whole clips with, so a stream's logits equal the whole clip's
to float rounding, however the audio is cut. Each output's context is recomputed with it
rather than carrying every layer's keys and values: the state stays a few hundred frames, one
code path serves rotary and relative positions and the Conformer convolution, and exactness
rests on the one receptive-field argument that `chunked_logits` already tests.

Streaming needs truncated attention and per-frame feature normalisation
(`feature_normalization="global"`): `streaming_refusal(model)` says why a model cannot stream.
Audio must arrive at the model's sample rate (`stream_start` refuses another rate).
"""

import tensorflow as tf

from applications.speech_recognition.streaming import SUBSAMPLING, context_frames
from tfformer.layers import ConvSubsampling

STATE_NAMES = ("state_samples", "state_sample_count", "state_features", "state_feature_count",
               "state_emitted", "state_last_symbol", "state_text", "state_peak", "state_model")
STATE_DTYPES = {"state_samples": tf.float32, "state_features": tf.float32,
                "state_text": tf.string, "state_peak": tf.float32, "state_model": tf.int64}
# Shapes are left unknown so that `LiveStream.check_state` refuses a wrong state at run time,
# naming it, also where a server feeds tensors without checking them against the signature.
STATE_SPECS = [tf.TensorSpec(None, STATE_DTYPES.get(name, tf.int32), name=name)
               for name in STATE_NAMES]


def streaming_refusal(model):
    """None when `model` can stream, else the reason it cannot."""
    if model.window is None:
        return ("it has full attention (window_left or window_right None), so every output "
                "depends on the whole clip")
    if model.feature_normalization != "global":
        return (f"feature_normalization={model.feature_normalization!r} normalises each clip "
                "by its own statistics, which are known only at its end; use \"global\"")
    return None


def _rows_concat(first, first_count, second):
    """Per row, first[:first_count] then all of second: (B, W1 + W2, ...); beyond, garbage."""
    first_width = tf.shape(first)[1]
    width = first_width + tf.shape(second)[1]
    positions = tf.range(width)[None, :]  # (1, W)
    counts = first_count[:, None]  # (B, 1)
    index = tf.where(positions < counts, positions, positions - counts + first_width)
    return tf.gather(tf.concat([first, second], axis=1), tf.minimum(index, width - 1),
                     batch_dims=1)


def _rows_drop(values, dropped, width):
    """Per row, values[dropped:dropped + width]: (B, width, ...); beyond the data, garbage."""
    index = dropped[:, None] + tf.range(width)[None, :]  # (B, width)
    return tf.gather(values, tf.minimum(index, tf.shape(values)[1] - 1), batch_dims=1)


class LiveStream:
    """Incremental CTC logits of a truncated-attention `SpeechRecognizer`.

    Args:
        model: a `SpeechRecognizer` that can stream (`streaming_refusal(model)` is None).
        front_end: the `FrontEnd` whose features the model was trained on.
        fingerprint: int, written into every state this stream starts and checked on every
            step, so a state from another export is refused.
    """

    def __init__(self, model, front_end, fingerprint):
        refusal = streaming_refusal(model)
        if refusal:
            raise ValueError(f"this model cannot stream: {refusal}")
        self.model = model
        self.front_end = front_end
        self.fingerprint = int(fingerprint)
        self.left, self.right = context_frames(model)
        self.feature_slots = SUBSAMPLING * (self.left + self.right + 1)
        self.shapes = {  # each state's shape after the batch axis
            "state_samples": [front_end.frame_length],
            "state_features": [self.feature_slots, model.num_mel_bins]}

    def start(self, batch):
        """The state of `batch` new streams: the first output's left context is the clip's
        (masked) start, as in `chunked_logits`."""
        def filled(name, value):
            return tf.fill(tf.stack([batch, *self.shapes.get(name, [])]),
                           tf.constant(value, STATE_DTYPES.get(name, tf.int32)))
        return {"state_samples": filled("state_samples", 0.0),
                "state_sample_count": filled("state_sample_count", 0),
                "state_features": filled("state_features", 0.0),
                "state_feature_count": filled("state_feature_count", SUBSAMPLING * self.left),
                "state_emitted": filled("state_emitted", 0),
                "state_last_symbol": filled("state_last_symbol", -1),
                "state_text": filled("state_text", ""),
                "state_peak": filled("state_peak", 0.0),
                "state_model": filled("state_model", self.fingerprint)}

    def check_state(self, batch, state):
        """Assertions that `state` has this model's shapes for `batch` streams and was made by
        this model; returns the state with its static ranks set."""
        checks, checked = [], {}
        for name in STATE_NAMES:
            tensor = state[name]
            expected = tf.strings.reduce_join(tf.strings.as_string(
                tf.stack([batch, *self.shapes.get(name, [])])), separator=" ")
            found = tf.strings.reduce_join(tf.strings.as_string(tf.shape(tensor)), separator=" ")
            wanted = " ".join(["B", *map(str, self.shapes.get(name, []))])
            checks.append(tf.debugging.Assert(tf.equal(found, expected), [
                f"{name} must have shape [{wanted}], B being the rows of waveform; got", found,
                "for B =", batch, ("- pass the state_* tensors that stream_start or the "
                                   "previous stream_step of this model returned")], summarize=8))
            checked[name] = tensor
        with tf.control_dependencies(checks):
            checks = [tf.debugging.Assert(
                tf.reduce_all(tf.equal(state["state_model"], self.fingerprint)),
                [("state_model does not match this model: the state was made by the "
                  "stream_start of another export; start the stream again with this one")])]
        with tf.control_dependencies(checks):
            return {name: tf.ensure_shape(tf.identity(tensor),
                                          [None, *self.shapes.get(name, [])])
                    for name, tensor in checked.items()}

    def step(self, waveform, final, state):
        """Feeds `waveform` (B, n) float32 at the model's rate to B streams.

        Returns (logits (B, C, V + 1) float32, counts (B,) int32, next state): row b's first
        counts[b] logits are the stream's next outputs. Where `final` (B,) is True the stream's
        look-ahead is flushed (every output up to the clip's end comes out) and its next state
        is a new stream's.
        """
        model, front_end = self.model, self.front_end
        step = front_end.frame_step
        samples = _rows_concat(state["state_samples"], state["state_sample_count"],
                               waveform)  # (B, frame_length + n)
        sample_total = state["state_sample_count"] + tf.shape(waveform)[1]
        new_frames = front_end.frame_counts(sample_total)  # (B,)
        features = model.normalize(front_end.spectrogram(samples), new_frames)  # (B, 1 + n/step, M)
        frames = _rows_concat(state["state_features"], state["state_feature_count"],
                              features)  # (B, slots + 1 + n/step, M)
        frame_total = state["state_feature_count"] + new_frames
        emitted = state["state_emitted"]
        first_frame = SUBSAMPLING * (emitted - self.left)  # the clip's index of frames[:, 0]
        ready = tf.maximum(frame_total // SUBSAMPLING - self.left - self.right, 0)
        at_end = tf.maximum(ConvSubsampling.output_lengths(first_frame + frame_total) - emitted, 0)
        counts = tf.where(final, at_end, ready)  # (B,)
        widest = tf.reduce_max(tf.concat([counts, [0]], axis=0))
        logits = self._window_logits(frames, frame_total, first_frame, widest)
        stepped = {
            "state_samples": _rows_drop(samples, new_frames * step, front_end.frame_length),
            "state_sample_count": sample_total - new_frames * step,
            "state_features": _rows_drop(frames, SUBSAMPLING * counts, self.feature_slots),
            "state_feature_count": frame_total - SUBSAMPLING * counts,
            "state_emitted": emitted + counts,
            "state_peak": tf.maximum(state["state_peak"],
                                     tf.reduce_max(tf.pad(tf.abs(waveform), [[0, 0], [0, 1]]), axis=1)),
        }
        for name in ("state_last_symbol", "state_text", "state_model"):
            stepped[name] = state[name]
        return logits, counts, stepped

    def _window_logits(self, frames, frame_total, first_frame, widest):
        """Logits of outputs [a, a + widest) of every row, from its frames [4 (a - l), ...)."""
        width = SUBSAMPLING * (widest + self.left + self.right)
        frames = tf.pad(frames, [[0, 0], [0, tf.maximum(width - tf.shape(frames)[1], 0)],
                                 [0, 0]])[:, :width]  # (B, W, M)
        positions = tf.range(width)[None, :]
        valid = (positions < frame_total[:, None]) & (positions + first_frame[:, None] >= 0)
        frames = tf.where(valid[:, :, None], frames, tf.zeros_like(frames))

        def encode():
            logits = self.model.encode_normalized(
                tf.cast(frames, self.model.compute_dtype), valid)  # (B, W / 4, V + 1)
            return logits[:, self.left:self.left + widest]

        classes = self.model.vocabulary_size + 1
        return tf.cond(widest > 0, encode,
                       lambda: tf.zeros(tf.stack([tf.shape(frames)[0], 0, classes])))

    def finish(self, final, stepped):
        """The next state: a new stream's where `final`, else `stepped`."""
        fresh = self.start(tf.shape(final)[0])

        def choose(name):
            rank = len(self.shapes.get(name, []))
            where = tf.reshape(final, tf.concat([tf.shape(final), tf.ones([rank], tf.int32)], 0))
            return tf.where(where, fresh[name], stepped[name])

        return {name: choose(name) for name in STATE_NAMES}
