"""CTC decoding to strings in the graph (`tf.nn.ctc_greedy_decoder` / `ctc_beam_search_decoder`)."""

import tensorflow as tf


def ctc_decode(logits, logit_lengths, vocabulary, beam_size=1):
    """logits (B, T, V + 1) with the blank last, lengths (B,) -> transcripts string (B,).

    `vocabulary` is a string tensor (V,) of the symbols' characters.
    """
    time_major = tf.transpose(tf.cast(logits, tf.float32), [1, 0, 2])  # (T, B, V + 1)
    lengths = tf.cast(logit_lengths, tf.int32)
    if beam_size <= 1:
        decoded, _ = tf.nn.ctc_greedy_decoder(time_major, lengths, merge_repeated=True)
    else:
        decoded, _ = tf.nn.ctc_beam_search_decoder(time_major, lengths, beam_width=beam_size,
                                                   top_paths=1)
    ids = tf.sparse.to_dense(decoded[0], default_value=-1)  # (B, L)
    symbols = tf.concat([vocabulary, [""]], axis=0)
    ids = tf.where(ids < 0, tf.cast(tf.size(vocabulary), ids.dtype), ids)
    text = tf.strings.reduce_join(tf.gather(symbols, ids), axis=-1)  # (B,)
    # ctc decoders size the sparse result by the longest output; keep B rows even when empty.
    return tf.reshape(text, [tf.shape(logits)[0]])
