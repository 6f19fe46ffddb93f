"""Filtering, expanding and batching a split's records a block at a time.

A `tf.data` function called once per record costs more than reading a listed record: at
200,000 listed clips, per-record filters and a per-record `flat_map` took most of the
time before the first training step, and batching a whole pass at once held each record
as its own tensors. These do the same work on blocks of records, with the order kept, so
that the passes before training cost the same per record at any size
(benchmarks/README.md, "Data larger than memory").

>>> records = tf.data.Dataset.range(6).map(lambda i: {"id": i})
>>> [int(r["id"]) for r in kept_where(records, lambda block: block["id"] % 2 == 0)]
[0, 2, 4]
"""

import dataclasses
import typing

import tensorflow as tf

BLOCK = 4096  # records a step: large enough that the per-step cost vanishes


def rows_of(columns, rows):
    """The rows `rows` (indices, in that order) of every column of a block."""
    return tf.nest.map_structure(lambda column: tf.gather(column, rows), columns)


def per_block(records, function, block=BLOCK):
    """`records` with `function` applied to blocks of them (dicts of columns; a column of
    records whose values vary in length, such as waveforms, is a RaggedTensor), in order."""
    return records.ragged_batch(block).map(function).unbatch()


def kept_where(records, keep, block=BLOCK):
    """The records for which `keep(columns)`, a boolean per record of a block, holds: a
    `Dataset.filter` that runs once per block."""
    def chosen(columns):
        return rows_of(columns, tf.where(keep(columns))[:, 0])

    return per_block(records, chosen, block)


def spread_sample(records, count, limit, shuffled=False):
    """(at most `limit` of `count` records spread evenly over them, how many): every
    step-th "id" when records are listed in order, or their head when they were `shuffled`
    when written (prepared shards), which reads nothing past it. The bounded samples taken
    before training (a tokenizer's sentences, normalisation's clips) come from here.

    >>> records = tf.data.Dataset.range(10).map(lambda i: {"id": i})
    >>> sample, size = spread_sample(records, 10, 4)
    >>> [int(r["id"]) for r in sample], size
    ([0, 3, 6, 9], 4)
    """
    if count <= limit:
        return records, count
    if shuffled:
        return records.take(limit), limit
    step = -(-count // limit)
    return kept_where(records, lambda block: block["id"] % step == 0), -(-count // step)


def repeated(columns, copies):
    """(every record of a block `copies` times in a row, each row's copy index 0..copies-1):
    for a `per_block` function that expands records, as a `flat_map` would per record."""
    size = tf.shape(columns["id"])[0]
    return (rows_of(columns, tf.repeat(tf.range(size), copies)),
            tf.tile(tf.range(copies, dtype=tf.int64), [size]))


@dataclasses.dataclass(frozen=True)
class Copies:
    """Each listed record stands for `count` records of a stream, copy k of a block's rows
    made by `at_copy(columns, k)` (k an int64 per row) as they are read: speed
    perturbation's copies, which are never listed, so that a pass holds a third as many
    records while it shuffles them. `count` 1: each record once, as it is."""

    count: int = 1
    at_copy: typing.Callable | None = None

    def of_rows(self, columns, copy):
        return self.at_copy(columns, copy) if self.count > 1 else columns

    def expanded(self, records, block=BLOCK):
        """Every copy of every record, in order: record i's copy k is element i*count + k."""
        if self.count == 1:
            return records
        return per_block(records, lambda columns: self.of_rows(*repeated(columns, self.count)),
                         block)


def all_in_one(records, count, block=BLOCK):
    """The `count` records as one element of columns, as `records.batch(count)` gives, but
    gathered `block` records at a time: batching them all at once holds every record as its
    own tensors first, about 0.9 KB a record (480 MB for 540,000 listed clips' records)."""
    def merged(columns):
        return tf.nest.map_structure(lambda column: column.merge_dims(0, 1), columns)

    return records.ragged_batch(block).ragged_batch(max(1, -(-count // block))).map(merged)
