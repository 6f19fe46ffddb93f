"""Batched greedy and beam search over a cached decoder, inside `tf.while_loop`.

Both take a `step_fn(token_ids, state, index) -> (logits, state)`:
`token_ids` (B',) are the tokens at position `index`, `state` is any nest of
batch-first tensors (the decoder's KV cache, the encoder memory, its mask),
and `logits` (B', V) predict position `index + 1`. For beam search B' = B*K:
the state is tiled to the beams once and reordered with them every step.
What the steps read but never change, such as the encoder's cross-attention
keys and values and its padding mask, can instead be passed as `shared`:
the step is then called as `step_fn(token_ids, state, index, shared)`, and
beam search passes `shared` untiled, (B, ...) against a state of (B*K, ...)
whose hypotheses b*K ... b*K + K - 1 belong to example b, so a step can
read each example's memory once for all of its hypotheses (a
`MultiHeadAttention` cross cache does this for rows in consecutive groups).
A state tensor may grow along an axis that starts empty (static length 0),
as a `tfformer.kv_cache.GrowingCache` does; every other shape is fixed.
Everything is a pure tensor loop, so it traces into a SavedModel and XLA can
compile the numeric core.

Sequences returned include the start token at position 0; positions after
the end token hold `pad_id`. The `*_with_state` variants also return the
final state (of the chosen beam), so anything a step function records in
its state, such as the attention it used, comes from the same decoding
that produced the sequence.
"""

import tensorflow as tf

_NEG_INF = -1e9


def _max_lengths(batch_size, max_length, max_lengths):
    limit = tf.fill([batch_size], tf.cast(max_length, tf.int32))
    if max_lengths is None:
        return limit
    return tf.minimum(tf.cast(max_lengths, tf.int32), limit)


def greedy_search(step_fn, start_ids, state, max_length, end_id, pad_id=0, max_lengths=None,
                  shared=None):
    """Greedy decoding: ids (B, max_length + 1) int32 (see `greedy_search_with_state`)."""
    return greedy_search_with_state(step_fn, start_ids, state, max_length, end_id, pad_id,
                                    max_lengths, shared, score=False)[0]


def greedy_search_with_state(step_fn, start_ids, state, max_length, end_id, pad_id=0,
                             max_lengths=None, shared=None, alpha=0.6, score=True):
    """Greedy decoding, scored as beam search scores its hypotheses.

    Args:
        step_fn: see the module docstring.
        start_ids: (B,) int32 first tokens (e.g. BOS).
        state: nest of (B, ...) tensors.
        max_length: int, the most tokens generated after the start token.
        end_id: int, the end-of-sequence id.
        pad_id: int, written after the end.
        max_lengths: optional (B,) per-example limits (e.g. from source
            lengths); the end token is forced when one is reached.
        shared: optional nest of (B, ...) tensors the steps read but never
            change; see the module docstring.
        alpha: float, length-penalty exponent of the returned scores.
        score: bool; False skips the scores' log-normaliser over the
            vocabulary (10% of a step at batch 32, vocabulary 8000) and returns
            zeros.

    Returns:
        ids (B, max_length + 1) int32; scores (B,) float32, each sequence's
        log-probability over its length penalty, as `beam_search_with_state`
        scores (a forced end token costs nothing); and the final state.
    """
    batch = tf.shape(start_ids)[0]
    limits = _max_lengths(batch, max_length, max_lengths)
    sequences = _start_sequences(start_ids, max_length, pad_id)
    step_fn = _with_shared(step_fn, shared)

    def body(index, tokens, finished, scores, state, sequences):
        logits, state = step_fn(tokens, state, index)
        logits = tf.cast(logits, tf.float32)
        allowed = _forbid_padding(logits, pad_id)
        next_tokens = tf.argmax(allowed, axis=-1, output_type=tf.int32)
        forced = index + 1 >= limits
        if score:  # log-probability of the chosen token, normalised over every token
            chosen = tf.reduce_max(allowed, axis=-1) - tf.reduce_logsumexp(logits, axis=-1)
            scores += tf.where(finished | forced, 0.0, chosen)
        next_tokens = tf.where(forced, end_id, next_tokens)
        next_tokens = tf.where(finished, pad_id, next_tokens)
        finished = finished | tf.equal(next_tokens, end_id)
        sequences = _write_column(sequences, index + 1, next_tokens)
        return index + 1, next_tokens, finished, scores, state, sequences

    def keep_going(index, tokens, finished, scores, state, sequences):
        return tf.logical_and(index < max_length, tf.logical_not(tf.reduce_all(finished)))

    loop_vars = (tf.constant(0), start_ids, tf.zeros([batch], tf.bool), tf.zeros([batch]),
                 state, sequences)
    *_, scores, state, sequences = tf.while_loop(keep_going, body, loop_vars,
                                                 shape_invariants=_loop_shapes(loop_vars))
    lengths = tf.reduce_sum(tf.cast(tf.not_equal(sequences[:, 1:], pad_id), tf.int32), axis=-1)
    return sequences, scores / length_penalty(lengths, alpha), state


def _with_shared(step_fn, shared):
    """step_fn(tokens, state, index), reading `shared` too when there is one."""
    if shared is None:
        return step_fn
    return lambda tokens, state, index: step_fn(tokens, state, index, shared)


def _loop_shapes(loop_vars):
    """Shape invariants for `tf.while_loop`: empty axes may grow, others are fixed."""
    def shape(value):
        if not isinstance(value, tf.Tensor):
            return None  # the loop takes the value's own spec
        if value.shape.rank is None:
            return value.shape
        return tf.TensorShape([None if size == 0 else size for size in value.shape])

    return tf.nest.map_structure(shape, loop_vars)


def _forbid_padding(logits, pad_id):
    """A live hypothesis never emits the padding id."""
    is_pad = tf.equal(tf.range(tf.shape(logits)[-1]), pad_id)[None]
    return tf.where(is_pad, _NEG_INF, logits)


def _start_sequences(start_ids, max_length, pad_id):
    """(B, max_length + 1): the start tokens, then padding."""
    padding = tf.fill([tf.shape(start_ids)[0], max_length], pad_id)
    return tf.concat([tf.cast(start_ids, tf.int32)[:, None], padding], axis=1)


def _write_column(sequences, column, values):
    rows = tf.range(tf.shape(sequences)[0])[:, None]
    indices = tf.concat([rows, tf.fill(tf.shape(rows), column)], axis=1)
    return tf.tensor_scatter_nd_update(sequences, indices, values)


def _tile_beams(tensor, beam_size):
    """(B, ...) -> (B*K, ...) with each example repeated K times."""
    return tf.repeat(tensor, beam_size, axis=0)


def _gather_beams(tensor, beam_indices, batch, beam_size):
    """Reorders (B*K, ...) rows by beam_indices (B, K)."""
    shape = tf.shape(tensor)
    grouped = tf.reshape(tensor, tf.concat([[batch, beam_size], shape[1:]], 0))
    gathered = tf.gather(grouped, beam_indices, axis=1, batch_dims=1)
    return tf.reshape(gathered, shape)


def length_penalty(lengths, alpha):
    """GNMT's ((5 + length) / 6) ** alpha; alpha 0 disables it."""
    return tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, alpha)


def beam_search(step_fn, start_ids, state, max_length, end_id, beam_size=4, alpha=0.6,
                pad_id=0, max_lengths=None, shared=None):
    """Beam search: ids (B, max_length + 1) int32 and scores (B,) (see
    `beam_search_with_state`)."""
    return beam_search_with_state(step_fn, start_ids, state, max_length, end_id, beam_size,
                                  alpha, pad_id, max_lengths, shared)[:2]


def beam_search_with_state(step_fn, start_ids, state, max_length, end_id, beam_size=4,
                           alpha=0.6, pad_id=0, max_lengths=None, shared=None):
    """Beam search with finished hypotheses kept in their beams.

    Each step extends every unfinished beam by every token and keeps the K
    best by total log-probability; a finished beam can only extend by
    padding at no cost, so it competes with its final score. At the end the
    best beam by score / length_penalty(length, alpha) is returned. With
    `beam_size=1` this is exactly greedy search.

    Args: as `greedy_search`, plus
        beam_size: int, K.
        alpha: float, length-penalty exponent.
        shared: as in `greedy_search`; passed to the step untiled, (B, ...).

    Returns:
        ids (B, max_length + 1) int32; scores (B,) float32, the
        length-normalised log-probabilities of the returned sequences; and
        the final state of each returned beam, (B, ...) per tensor.
    """
    batch = tf.shape(start_ids)[0]
    limits = _tile_beams(_max_lengths(batch, max_length, max_lengths), beam_size)  # (B*K,)
    state = tf.nest.map_structure(lambda t: _tile_beams(t, beam_size), state)
    tokens = _tile_beams(start_ids, beam_size)  # (B*K,)
    # Only the first beam is live at the start; the others are copies of it.
    scores = tf.tile(tf.concat([[0.0], tf.fill([beam_size - 1], _NEG_INF)], 0)[None], [batch, 1])
    sequences = _start_sequences(tokens, max_length, pad_id)  # (B*K, max_length + 1)
    finished = tf.zeros([batch * beam_size], tf.bool)
    step_fn = _with_shared(step_fn, shared)

    def body(index, tokens, scores, finished, sequences, state):
        logits, new_state = step_fn(tokens, state, index)
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)  # (B*K, V)
        log_probs = _forbid_padding(log_probs, pad_id)
        vocabulary = tf.shape(log_probs)[-1]
        token_range = tf.range(vocabulary)
        at_limit = (index + 1 >= limits)[:, None]
        forced_end = tf.where(tf.equal(token_range, end_id)[None], 0.0, _NEG_INF)
        log_probs = tf.where(at_limit, forced_end, log_probs)
        padding_only = tf.where(tf.equal(token_range, pad_id)[None], 0.0, _NEG_INF)
        log_probs = tf.where(finished[:, None], padding_only, log_probs)
        candidates = tf.reshape(scores, [-1, 1]) + log_probs  # (B*K, V)
        candidates = tf.reshape(candidates, [batch, beam_size * vocabulary])
        scores, flat = tf.math.top_k(candidates, k=beam_size)  # (B, K)
        beam_indices, next_tokens = flat // vocabulary, flat % vocabulary
        next_tokens = tf.reshape(next_tokens, [-1])  # (B*K,)
        reorder = lambda t: _gather_beams(t, beam_indices, batch, beam_size)
        # Every state tensor starts equal across an example's beams (tiled); one the step
        # passes through unchanged (encoder memory, cross-attention caches, masks) stays
        # so, and reordering it would only copy it.
        state = tf.nest.map_structure(
            lambda old, new: new if new is old else reorder(new), state, new_state)
        finished = reorder(finished)
        sequences = reorder(sequences)
        sequences = _write_column(sequences, index + 1, next_tokens)
        finished = finished | tf.equal(next_tokens, end_id)
        return index + 1, next_tokens, scores, finished, sequences, state

    def keep_going(index, tokens, scores, finished, sequences, state):
        return tf.logical_and(index < max_length, tf.logical_not(tf.reduce_all(finished)))

    loop_vars = (tf.constant(0), tokens, scores, finished, sequences, state)
    _, _, scores, _, sequences, state = tf.while_loop(
        keep_going, body, loop_vars, shape_invariants=_loop_shapes(loop_vars))
    sequences = tf.reshape(sequences, [batch, beam_size, max_length + 1])
    generated = tf.not_equal(sequences[:, :, 1:], pad_id)
    lengths = tf.reduce_sum(tf.cast(generated, tf.int32), axis=-1)  # (B, K)
    normalised = scores / length_penalty(lengths, alpha)
    best = tf.argmax(normalised, axis=-1, output_type=tf.int32)  # (B,)

    def best_beam(tensor):  # (B*K, ...) -> (B, ...)
        grouped = tf.reshape(tensor, tf.concat([[batch, beam_size], tf.shape(tensor)[1:]], 0))
        return tf.gather(grouped, best, axis=1, batch_dims=1)

    return (
        tf.gather(sequences, best, axis=1, batch_dims=1),
        tf.gather(normalised, best, axis=1, batch_dims=1),
        tf.nest.map_structure(best_beam, state),
    )
