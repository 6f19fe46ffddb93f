"""Chunked inference: fixed-size chunks with their context, exact because attention is truncated.

An output frame of an L-layer encoder with window (l, r) depends only on
subsampled frames [i - L*l, i + L*r] (a Conformer convolution module of
kernel k widens each layer's reach by (k - 1) / 2 each side), and the 4x
subsampling adds one frame of context each side. So a chunk of C outputs [a, a + C) is computed from
the normalised features of subsampled frames [a - L*l - 1, a + C + L*r + 1)
alone: values near a slice's edges are wrong, but the error moves inward
only one window per layer and never reaches the chunk. All chunks of a batch
run as one batch of fixed-size slices, so memory grows linearly with the
clip's length and each chunk's latency is bounded by C + L*r + 1 frames of
audio. Positions must be relative (rotary or T5 buckets) for the slices to
be shift-invariant, which is why the speech model offers no absolute ones.
"""

import tensorflow as tf

from tfformer.layers import ConvSubsampling
from tfformer.masks import length_mask

SUBSAMPLING = ConvSubsampling.factor


def context_frames(model):
    """(left, right) subsampled frames of context a chunk of outputs needs."""
    if model.window is None:
        raise ValueError("chunked inference needs truncated attention; this model has full "
                         "attention (window=None), so every output depends on the whole clip")
    left, right = model.window
    convolution = (model.convolution_kernel_size or 1) // 2
    return (model.num_layers * (left + convolution) + 1,
            model.num_layers * (right + convolution) + 1)


def chunked_logits(model, features, feature_lengths, chunk_frames):
    """CTC logits (B, ceil(F/4), V + 1), computed `chunk_frames` subsampled frames at a time.

    Equal, to float rounding, to `model({"features": ..., "feature_lengths": ...})`.
    Works eagerly and inside a `tf.function` (the serving signatures use it).
    With utterance normalisation the clip is normalised as a whole first;
    with `feature_normalization="global"` every step is local.
    """
    if not isinstance(chunk_frames, int) or chunk_frames <= 0:
        raise ValueError(f"chunk_frames must be a positive int, got chunk_frames={chunk_frames!r}")
    left, right = context_frames(model)
    features = tf.convert_to_tensor(features, tf.float32)
    lengths = tf.cast(feature_lengths, tf.int32)
    frames = tf.shape(features)[1]
    normalized = tf.cast(model.normalize(features, lengths), model.compute_dtype)  # (B, F, M)
    frame_mask = tf.cast(length_mask(lengths, frames), tf.int32)  # (B, F)
    total = ConvSubsampling.output_lengths(frames)
    chunks = (total + chunk_frames - 1) // chunk_frames
    # Masked frames in front act exactly as the clip's start; behind, as its end.
    padding = [[0, 0], [SUBSAMPLING * left,
                        SUBSAMPLING * (chunks * chunk_frames + right) - frames]]
    window = SUBSAMPLING * (chunk_frames + left + right)
    step = SUBSAMPLING * chunk_frames
    sliced = tf.signal.frame(tf.pad(normalized, padding + [[0, 0]]), window, step,
                             axis=1)  # (B, chunks, W, M)
    sliced_mask = tf.signal.frame(tf.pad(frame_mask, padding), window, step, axis=1)
    batch, bins = tf.shape(features)[0], features.shape[-1]
    logits = model.encode_normalized(
        tf.reshape(sliced, (batch * chunks, window, bins)),
        tf.reshape(sliced_mask, (batch * chunks, window)) > 0)  # (B * chunks, C + l + r, V + 1)
    logits = logits[:, left:left + chunk_frames]  # (B * chunks, C, V + 1)
    logits = tf.reshape(logits, (batch, chunks * chunk_frames, tf.shape(logits)[-1]))
    return logits[:, :total]
