"""Block-at-a-time filters, expansions and batches give exactly what tf.data's per-record
`filter`, `flat_map` and `batch` give, in the same order, for dense and ragged columns and
for counts that do not fill the last block."""

import numpy as np
import pytest
import tensorflow as tf

from applications.common import record_blocks


def _listed(count):
    return tf.data.Dataset.range(count).map(lambda i: {
        "id": i, "path": tf.strings.join(["clip_", tf.strings.as_string(i), ".wav"])})


def _in_memory(count):  # waveforms of different lengths: a ragged column
    waves = [np.arange(1 + i % 4, dtype=np.float32) + i for i in range(count)]
    return tf.data.Dataset.from_tensor_slices({
        "waveform": tf.ragged.constant(waves, ragged_rank=1),
        "id": tf.range(count, dtype=tf.int64)})


def _values(dataset):
    return [{name: np.asarray(value.numpy()).tolist() for name, value in record.items()}
            for record in dataset]


@pytest.mark.parametrize("make", [_listed, _in_memory])
@pytest.mark.parametrize("count", [0, 1, 7, 23])
def test_kept_where_is_a_filter(make, count):
    records = make(count)
    expected = _values(records.filter(lambda record: record["id"] % 3 != 1))
    got = record_blocks.kept_where(records, lambda block: block["id"] % 3 != 1, block=5)
    assert _values(got) == expected
    assert got.element_spec == records.element_spec


@pytest.mark.parametrize("count,limit", [(23, 5), (23, 23), (23, 40), (100, 7), (0, 3)])
def test_spread_sample_is_every_step_th_record_or_the_head(count, limit):
    records = _listed(count)
    sample, size = record_blocks.spread_sample(records, count, limit)
    ids = [record["id"] for record in _values(sample)]
    assert len(ids) == size <= limit
    assert ids == list(range(0, count, max(1, -(-count // limit))))
    if count > limit:  # spread over the whole list, not its head
        assert ids[-1] >= count - -(-count // limit)
    head, head_size = record_blocks.spread_sample(records, count, limit, shuffled=True)
    assert [record["id"] for record in _values(head)] == list(range(head_size))
    assert head_size == min(count, limit)


@pytest.mark.parametrize("make", [_listed, _in_memory])
def test_repeated_blocks_are_a_flat_map_into_copies(make):
    records = make(11)
    expected = _values(records.flat_map(lambda record: tf.data.Dataset.range(3).map(
        lambda k: {**record, "id": record["id"] * 3 + k})))

    def copies(block):
        copied, k = record_blocks.repeated(block, 3)
        return {**copied, "id": copied["id"] * 3 + k}

    assert _values(record_blocks.per_block(records, copies, block=4)) == expected


@pytest.mark.parametrize("make", [_listed, _in_memory])
@pytest.mark.parametrize("count", [1, 5, 23])
def test_all_in_one_is_one_batch_of_every_record(make, count):
    records = make(count)
    got = list(record_blocks.all_in_one(records, count, block=5))
    assert len(got) == 1
    expected = next(iter(records.batch(count)))
    for name, column in expected.items():
        value = got[0][name]
        if isinstance(column, tf.RaggedTensor):
            assert value.to_list() == column.to_list()
        else:
            assert value.numpy().tolist() == column.numpy().tolist()
