"""CTC decoding to strings in the graph (`tf.nn.ctc_greedy_decoder` / `ctc_beam_search_decoder`),
optionally restricted to a closed word list (the lexicon)."""

import tensorflow as tf


def check_decoding(beam_size, uses_lexicon):
    if uses_lexicon and beam_size <= 1:
        raise ValueError("lexicon decoding picks among the beam's best paths: it needs "
                         f"beam_size > 1, got beam_size={beam_size}")


def lexicon_table(words):
    """A hash table of the words decoding may produce (1 for a known word, 0 otherwise)."""
    words = tf.constant(list(words), tf.string)
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(words, tf.ones_like(words, tf.int32)), default_value=0)


def ctc_decode(logits, logit_lengths, vocabulary, beam_size=1, separator="", lexicon=None):
    """logits (B, T, V + 1) with the blank last, lengths (B,) -> transcripts string (B,).

    `vocabulary` is a string tensor (V,) of the symbols (characters or words);
    `separator` joins the decoded symbols ("" for characters, " " for words).
    With `lexicon` (a `lexicon_table` of words) the beam's `beam_size` best
    paths are decoded, and each row returns the most likely non-empty one
    whose words are all in the lexicon, or the best path when none is (or
    when the best path is empty): n-best filtering,
    which keeps character models from misspelling a closed vocabulary such as
    digit names.
    """
    check_decoding(beam_size, lexicon is not None)
    time_major = tf.transpose(tf.cast(logits, tf.float32), [1, 0, 2])  # (T, B, V + 1)
    lengths = tf.cast(logit_lengths, tf.int32)
    batch = tf.shape(logits)[0]
    if beam_size <= 1:
        decoded, _ = tf.nn.ctc_greedy_decoder(time_major, lengths, merge_repeated=True)
    else:
        decoded, _ = tf.nn.ctc_beam_search_decoder(
            time_major, lengths, beam_width=beam_size,
            top_paths=1 if lexicon is None else beam_size)
    # ctc decoders size the sparse result by the longest output; keep B rows even when empty.
    paths = tf.stack([_join(path, vocabulary, separator, batch) for path in decoded],
                     axis=1)  # (B, paths), best first
    if lexicon is None:
        return paths[:, 0]
    words = tf.strings.split(paths)  # (B, paths, None)
    known = lexicon.lookup(words.flat_values) > 0
    # An empty path has no unknown words, but choosing it over a better one would delete them.
    nonempty_or_best = tf.logical_or(tf.strings.length(tf.strings.strip(paths)) > 0,
                                     tf.range(tf.shape(paths)[1])[None, :] == 0)
    all_known = tf.reduce_all(words.with_flat_values(known), axis=-1)
    if isinstance(all_known, tf.RaggedTensor):
        all_known = all_known.to_tensor()
    valid = all_known & nonempty_or_best  # (B, paths)
    first_valid = tf.argmax(tf.cast(valid, tf.int32), axis=1, output_type=tf.int32)
    return tf.gather(paths, first_valid, axis=1, batch_dims=1)  # path 0 when none is valid


def _join(path, vocabulary, separator, batch):
    ids = tf.RaggedTensor.from_sparse(path)  # (B, None)
    text = tf.strings.reduce_join(tf.gather(vocabulary, ids), axis=-1, separator=separator)
    return tf.reshape(text, [batch])


def ctc_greedy_continue(logits, counts, last_symbol):
    """Greedy CTC decoding of a stream's next outputs, carried on from its previous ones.

    logits (B, C, V + 1) with the blank last, of which row b's first counts[b] are valid;
    last_symbol (B,) int32, the best symbol of the stream's previous output (-1 at its start).
    Returns (symbols: ragged int32 (B, None), the new last symbol (B,)). Over any cutting of a
    clip's outputs the symbols join to what `tf.nn.ctc_greedy_decoder` gives for the whole clip:
    a symbol is kept when it is not the blank and differs from the previous output's best
    (which may be the blank), as TensorFlow's decoder does.
    """
    best = tf.argmax(logits, axis=-1, output_type=tf.int32)  # (B, C)
    with_last = tf.concat([tf.cast(last_symbol, tf.int32)[:, None], best], axis=1)  # (B, C + 1)
    previous = with_last[:, :-1]
    counts = tf.cast(counts, tf.int32)
    valid = tf.range(tf.shape(best)[1])[None, :] < counts[:, None]
    keep = valid & (best != tf.shape(logits)[-1] - 1) & (best != previous)
    return tf.ragged.boolean_mask(best, keep), tf.gather(with_last, counts, batch_dims=1)


def append_symbols(text, symbols, vocabulary, separator=""):
    """text (B,) string plus the ragged symbol ids (B, None), joined by `separator` as
    `ctc_decode` joins a whole clip's."""
    new = tf.strings.reduce_join(tf.gather(vocabulary, symbols), axis=-1, separator=separator)
    both = (tf.strings.length(text) > 0) & (tf.strings.length(new) > 0)
    return tf.strings.join([text, tf.where(both, separator, ""), new])
