"""CTC decoding to strings in the graph (`tf.nn.ctc_greedy_decoder` / `ctc_beam_search_decoder`)."""

import tensorflow as tf


def ctc_decode(logits, logit_lengths, vocabulary, beam_size=1, separator=""):
    """logits (B, T, V + 1) with the blank last, lengths (B,) -> transcripts string (B,).

    `vocabulary` is a string tensor (V,) of the symbols (characters or words);
    `separator` joins the decoded symbols ("" for characters, " " for words).
    """
    time_major = tf.transpose(tf.cast(logits, tf.float32), [1, 0, 2])  # (T, B, V + 1)
    lengths = tf.cast(logit_lengths, tf.int32)
    if beam_size <= 1:
        decoded, _ = tf.nn.ctc_greedy_decoder(time_major, lengths, merge_repeated=True)
    else:
        decoded, _ = tf.nn.ctc_beam_search_decoder(time_major, lengths, beam_width=beam_size,
                                                   top_paths=1)
    ids = tf.RaggedTensor.from_sparse(decoded[0])  # (B, None)
    text = tf.strings.reduce_join(tf.gather(vocabulary, ids), axis=-1, separator=separator)
    # ctc decoders size the sparse result by the longest output; keep B rows even when empty.
    return tf.reshape(text, [tf.shape(logits)[0]])
