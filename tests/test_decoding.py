import numpy as np
import tensorflow as tf

from tfformer.decoding import (
    beam_search,
    beam_search_with_state,
    greedy_search,
    greedy_search_with_state,
)

V, END, PAD, START = 7, 2, 0, 1


def _table_step(table):
    """A toy 'model': logits depend on the previous token only, via a table."""
    table = tf.constant(table, tf.float32)

    def step(tokens, state, index):
        return tf.gather(table, tokens) + state["bias"], state

    return step


def _random_table(seed):
    return np.random.default_rng(seed).normal(size=(V, V)).astype("float32") * 3


def test_beam_size_one_equals_greedy():
    step = _table_step(_random_table(0))
    start = tf.fill([3], START)
    state = {"bias": tf.constant(np.random.default_rng(1).normal(size=(3, V)), tf.float32)}
    greedy = greedy_search(step, start, state, max_length=8, end_id=END)
    beam, _ = beam_search(step, start, state, max_length=8, end_id=END, beam_size=1, alpha=0.0)
    np.testing.assert_array_equal(greedy, beam)
    # and greedy's score is beam search's: the length-normalised log-probability, also with a
    # per-example limit that forces the end token
    for alpha, limits in ((0.0, None), (0.6, [3, 8, 5])):
        ids, scores, _ = greedy_search_with_state(step, start, state, 8, END, alpha=alpha,
                                                  max_lengths=limits)
        beam, beam_scores = beam_search(step, start, state, 8, END, beam_size=1, alpha=alpha,
                                        max_lengths=limits)
        np.testing.assert_array_equal(ids, beam)
        np.testing.assert_allclose(scores, beam_scores, rtol=1e-6)
        assert np.all(scores.numpy() < 0)


def test_greedy_stops_at_end_and_pads_after_it():
    table = np.full((V, V), -5.0, "float32")
    table[START, 4] = table[4, 5] = table[5, END] = 5.0
    ids = greedy_search(_table_step(table), tf.fill([2], START), {"bias": tf.zeros((2, V))},
                        max_length=6, end_id=END)
    np.testing.assert_array_equal(ids, [[START, 4, 5, END, PAD, PAD, PAD]] * 2)


def test_per_example_max_lengths_force_the_end_token():
    table = np.full((V, V), -5.0, "float32")
    table[:, 4] = 5.0  # never ends by itself
    ids = greedy_search(_table_step(table), tf.fill([2], START), {"bias": tf.zeros((2, V))},
                        max_length=5, end_id=END, max_lengths=tf.constant([2, 9]))
    np.testing.assert_array_equal(ids[0], [START, 4, END, PAD, PAD, PAD])
    np.testing.assert_array_equal(ids[1], [START, 4, 4, 4, 4, END])


def _sequence_log_prob(table, sequence):
    log_probs = tf.nn.log_softmax(tf.constant(table), axis=-1).numpy()
    total = 0.0
    for previous, token in zip(sequence[:-1], sequence[1:]):
        if previous == END or previous == PAD:
            break
        total += log_probs[previous, token]
    return total


def test_beam_search_finds_the_exhaustive_best_of_short_sequences():
    table = _random_table(3)
    step = _table_step(table)
    ids, score = beam_search(step, tf.fill([1], START), {"bias": tf.zeros((1, V))},
                             max_length=3, end_id=END, beam_size=V * V, alpha=0.0)
    # Exhaustive: every sequence of up to 3 tokens (the last forced to END).
    best = -np.inf
    for a in range(V):
        for b in range(V):
            for c in range(V):
                seq = [START, a, b, c]
                # The third token is forced to END; PAD is never generated.
                seq = seq[: seq.index(END, 1) + 1] if END in seq[1:] else [START, a, b, END]
                if PAD in seq[1:]:
                    continue
                best = max(best, _sequence_log_prob(table, seq))
    np.testing.assert_allclose(float(score[0]), best, atol=1e-4)


def test_beam_search_beats_or_ties_greedy_in_log_probability():
    table = _random_table(5)
    step = _table_step(table)
    start, state = tf.fill([1], START), {"bias": tf.zeros((1, V))}
    greedy = greedy_search(step, start, state, max_length=6, end_id=END).numpy()[0]
    beam, _ = beam_search(step, start, state, max_length=6, end_id=END, beam_size=4, alpha=0.0)
    assert _sequence_log_prob(table, list(beam.numpy()[0])) >= _sequence_log_prob(
        table, list(greedy)) - 1e-5


def test_empty_batch_decodes_to_nothing():
    step = _table_step(_random_table(0))
    ids, scores = beam_search(step, tf.zeros([0], tf.int32), {"bias": tf.zeros((0, V))},
                              max_length=4, end_id=END, beam_size=3)
    assert ids.shape == (0, 5) and scores.shape == (0,)


def test_the_returned_state_is_the_one_that_produced_the_returned_sequence():
    """A step function that writes each fed token into its state: the final state of the
    chosen beam must spell out the chosen sequence (the state moves with its beam)."""
    table = tf.constant(_random_table(4))
    max_length = 6

    def step(tokens, state, index):
        fed = state["fed"] + tf.one_hot(index, max_length + 1, dtype=tf.int32) * tokens[:, None]
        return tf.gather(table, tokens) + state["bias"], {**state, "fed": fed}

    batch = 3
    state = {"bias": tf.constant(np.random.default_rng(5).normal(size=(batch, V)), tf.float32),
             "fed": tf.zeros((batch, max_length + 1), tf.int32)}
    start = tf.fill([batch], START)
    for ids, final in (
            greedy_search_with_state(step, start, state, max_length, END)[::2],
            beam_search_with_state(step, start, state, max_length, END, beam_size=4)[::2]):
        ids, fed = ids.numpy(), final["fed"].numpy()
        assert fed.shape == (batch, max_length + 1)
        for row in range(batch):
            # position t was fed ids[t]; the last id is produced, never fed
            length = int(np.sum(ids[row] != PAD))
            assert length >= 2
            np.testing.assert_array_equal(fed[row, :length - 1], ids[row, :length - 1])


def test_state_may_grow_along_an_axis_that_starts_empty():
    """In a traced loop, a state tensor that starts with an empty axis (a growing KV cache)
    may gain a row every step; beam search reorders it with its beam like any other state."""
    table = tf.constant(_random_table(8))
    batch, max_length = 3, 6

    def step(tokens, state, index):
        fed = tf.concat([state["fed"], tokens[:, None]], axis=1)  # (B, index + 1)
        return tf.gather(table, tokens) + state["bias"], {**state, "fed": fed}

    state = {"bias": tf.constant(np.random.default_rng(9).normal(size=(batch, V)), tf.float32),
             "fed": tf.zeros((batch, 0), tf.int32)}
    start = tf.fill([batch], START)
    searches = {
        "greedy": tf.function(lambda: greedy_search_with_state(step, start, state, max_length,
                                                               END)[::2]),
        "beam": tf.function(lambda: beam_search_with_state(step, start, state, max_length, END,
                                                           beam_size=4)[::2]),
    }
    for name, search in searches.items():
        ids, final = search()
        ids, fed = ids.numpy(), final["fed"].numpy()
        assert 1 <= fed.shape[1] <= max_length, name
        for row in range(batch):  # position t was fed ids[t], for every step the loop ran
            length = int(np.sum(ids[row] != PAD))
            np.testing.assert_array_equal(fed[row, :length - 1], ids[row, :length - 1])
        # the same search without a traced loop agrees
        eager_ids = (greedy_search(step, start, state, max_length, END) if name == "greedy"
                     else beam_search(step, start, state, max_length, END, beam_size=4)[0])
        np.testing.assert_array_equal(ids, eager_ids)


def test_shared_inputs_reach_the_step_untiled_and_decode_as_tiled_state_does():
    table = _random_table(10)
    batch, beam_size = 3, 4
    bias = tf.constant(np.random.default_rng(11).normal(size=(batch, V)), tf.float32)
    in_state = _table_step(table)
    seen_rows = []

    def reading_shared(tokens, state, index, shared):
        seen_rows.append(shared["bias"].shape[0])
        groups = tf.shape(tokens)[0] // tf.shape(shared["bias"])[0]  # hypotheses per example
        return in_state(tokens, {"bias": tf.repeat(shared["bias"], groups, axis=0)}, index)[0], state

    start = tf.fill([batch], START)
    shared = {"bias": bias}
    np.testing.assert_array_equal(
        greedy_search(reading_shared, start, {}, 6, END, shared=shared),
        greedy_search(in_state, start, {"bias": bias}, 6, END))
    for got, expected in zip(
            beam_search(reading_shared, start, {}, 6, END, beam_size=beam_size, shared=shared),
            beam_search(in_state, start, {"bias": bias}, 6, END, beam_size=beam_size)):
        np.testing.assert_array_equal(got, expected)
    assert set(seen_rows) == {batch}  # never tiled to the beams


def test_state_the_step_passes_through_is_not_reordered_and_changes_nothing():
    """Beam search skips reordering state the step returns untouched (it stays equal across
    an example's beams); a step that returns a fresh copy gets the same results."""
    table = _random_table(6)
    batch = 4
    state = {"bias": tf.constant(np.random.default_rng(7).normal(size=(batch, V)), tf.float32)}
    passed_through = _table_step(table)

    def copied(tokens, state, index):
        logits, state = passed_through(tokens, state, index)
        return logits, {"bias": tf.identity(state["bias"])}

    start = tf.fill([batch], START)
    results = [beam_search(step, start, state, 8, END, beam_size=3)
               for step in (passed_through, copied)]
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
