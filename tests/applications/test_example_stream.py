"""The training stream: every pass a permutation of its records, any position reachable
without replaying what comes before, and a resumed stream that neither skips nor repeats a
good example when some records are bad."""

import numpy as np
import pytest
import tensorflow as tf

from applications.common import example_stream, record_blocks

COUNT = 23


def _records(count=COUNT):
    return tf.data.Dataset.range(count).map(lambda i: {"id": i, "value": i * 10})


def _ids(dataset, count):
    return [int(record["id"]) for record in dataset.take(count)]


@pytest.mark.parametrize("buffer", [None, 5])
def test_every_pass_is_a_permutation_of_its_records_in_its_own_order(buffer):
    stream = _ids(example_stream.training_stream(_records(), COUNT, seed=3,
                                                 shuffle_buffer=buffer), 3 * COUNT)
    passes = [stream[i * COUNT:(i + 1) * COUNT] for i in range(3)]
    for one in passes:
        assert sorted(one) == list(range(COUNT))
    assert passes[0] != passes[1] != passes[2] and passes[0] != list(range(COUNT))
    other_seed = _ids(example_stream.training_stream(_records(), COUNT, seed=4,
                                                     shuffle_buffer=buffer), COUNT)
    assert other_seed != passes[0]
    if buffer:  # blocks of 5 shuffled within themselves
        assert sorted(passes[0][:5]) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("start", [0, 1, 22, 23, 50])
def test_a_stream_started_anywhere_is_the_tail_of_the_whole_one(start):
    whole = _ids(example_stream.training_stream(_records(), COUNT, seed=1), start + 30)
    tail = _ids(example_stream.training_stream(_records(), COUNT, seed=1, start=start), 30)
    assert tail == whole[start:]


@pytest.mark.parametrize("consumed", [0, 1, 7, 20, 21, 22, 45, 64])
def test_a_resumed_stream_goes_on_after_the_good_examples_consumed(consumed):
    bad = {3, 11, 12}  # in every pass; training never sees them
    whole = [i for i in _ids(example_stream.training_stream(_records(), COUNT, seed=2), 200)
             if i not in bad]
    start = example_stream.position_after(consumed, _records(), COUNT, 2, bad)
    resumed = [i for i in _ids(example_stream.training_stream(_records(), COUNT, seed=2,
                                                              start=start), 40)
               if i not in bad]
    assert resumed[:20] == whole[consumed:consumed + 20]


def _thrice():  # each record read three times a pass, as speed perturbation does
    return record_blocks.Copies(3, lambda columns, k: {
        **columns, "id": columns["id"] * 3 + k, "value": columns["value"] + k})


@pytest.mark.parametrize("buffer", [None, 10])
def test_copies_made_while_a_pass_is_read_are_the_copies_listed_in_the_same_order(buffer):
    copies, count = _thrice(), 3 * COUNT
    listed = copies.expanded(_records())
    expected = list(example_stream.training_stream(listed, count, seed=6,
                                                   shuffle_buffer=buffer).take(2 * count + 5))
    got = list(example_stream.training_stream(_records(), count, seed=6,
                                              shuffle_buffer=buffer, copies=copies)
               .take(2 * count + 5))
    assert [{k: int(v) for k, v in r.items()} for r in got] == [
        {k: int(v) for k, v in r.items()} for r in expected]
    assert sorted(int(r["id"]) for r in got[:count]) == list(range(count))
    bad = {4, 5, 30}
    for consumed in (10, 70, 140):
        assert example_stream.position_after(consumed, _records(), count, 6, bad, buffer,
                                             copies) == example_stream.position_after(
            consumed, listed, count, 6, bad, buffer)


def test_workers_split_every_pass_between_them_exactly_once():
    seen = []
    for worker in range(3):
        records = _records().shard(3, worker)
        count = example_stream.shard_size(COUNT, worker, 3)
        seen.append(_ids(example_stream.training_stream(records, count, seed=5), count))
    assert sorted(np.concatenate(seen).tolist()) == list(range(COUNT))


def test_evaluation_data_is_split_by_example_and_read_without_the_autotuner():
    # Deleting an iterator joins tf.data's autotuning thread, which stalled for ~30 s
    # between epochs when Keras replaced the validation iterator (TF 2.21).
    options = example_stream.for_evaluation(_records()).options()
    assert options.experimental_distribute.auto_shard_policy == (
        tf.data.experimental.AutoShardPolicy.DATA)
    assert not options.autotune.enabled
    assert _ids(example_stream.for_evaluation(_records()), COUNT) == list(range(COUNT))
