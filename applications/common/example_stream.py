"""The training stream over a data set's records, from any position, split across workers.

Records are what a data set lists before anything is decoded: file paths,
encoded bytes, raw lines; each a dict with an int64 "id" (its index in the
data set). The stream is pass after pass over them, pass k shuffled with its
own seed, so any pass can be started without replaying the ones before, and
the position a resumed run needs is found by skipping records, never by
decoding and dropping batches (`position_after`).

>>> records = tf.data.Dataset.range(5).map(lambda i: {"id": i})
>>> first = [int(r["id"]) for r in training_stream(records, 5, seed=1).take(12)]
>>> sorted(first[:5]) == sorted(first[5:10]) == [0, 1, 2, 3, 4]
True
>>> [int(r["id"]) for r in training_stream(records, 5, seed=1, start=7).take(5)] == first[7:12]
True
"""

import numpy as np
import tensorflow as tf

from applications.common import data_service, record_blocks

PASS_SEED_STRIDE = 1_000_003  # a prime: (seed, pass) pairs give distinct shuffle seeds
NO_COPIES = record_blocks.Copies()


def one_pass(records, count, seed, index, shuffle_buffer=None, copies=NO_COPIES):
    """Pass `index` of the stream: `count` records shuffled with that pass's own seed, in
    blocks of `shuffle_buffer` records (default all of them: a full permutation).
    `copies` (`record_blocks.Copies`): each of `records` stands for that many of the
    `count`, made as the pass reads them; the order is that of the copies listed.

    Stateless shuffles of blocks rather than `Dataset.shuffle`, whose seed can't be a
    tensor (a pass index) when the global seed is 0."""
    block = min(count, shuffle_buffer or count)
    pass_seed = tf.cast(seed, tf.int64) * PASS_SEED_STRIDE + tf.cast(index, tf.int64)

    def shuffled(block_index, columns, copies):
        size = tf.shape(columns["id"])[0] * copies.count
        order = tf.random.experimental.stateless_shuffle(
            tf.range(size), seed=tf.stack([pass_seed, block_index]))
        return copies.of_rows(record_blocks.rows_of(columns, order // copies.count),
                              tf.cast(order % copies.count, tf.int64))

    if block < count:
        return copies.expanded(records).batch(block).enumerate().map(
            lambda block_index, columns: shuffled(block_index, columns, NO_COPIES)).unbatch()
    return record_blocks.all_in_one(records, count // copies.count).map(
        lambda columns: shuffled(tf.constant(0, tf.int64), columns, copies)).unbatch()


def training_stream(records, count, seed, start=0, shuffle_buffer=None, offloaded=False,
                    copies=NO_COPIES):
    """The endless stream of `count` records (`one_pass`), pass after pass, from absolute
    position `start` (pass start // count, record start % count of it). `offloaded`: it
    will run on tf.data service workers, each of which keeps its share from here on
    (`data_service.shard_point`)."""
    if count <= 0:
        raise ValueError("a training stream needs at least one record")
    first_pass, offset = divmod(int(start), count)
    stream = tf.data.Dataset.counter(first_pass).flat_map(
        lambda index: one_pass(records, count, seed, index, shuffle_buffer, copies))
    return data_service.shard_point(stream.skip(offset) if offset else stream, offloaded)


def position_after(consumed, records, count, seed, bad, shuffle_buffer=None,
                   copies=NO_COPIES):
    """The stream position after `consumed` good examples: bad records (ids in `bad`,
    which are bad in every pass) are in the stream but never reach training, so each
    pass holds count - len(bad) good ones; within the last pass the records are walked
    (ids only, nothing decoded) to the one after the `consumed`-th good."""
    if not bad:
        return consumed
    good_per_pass = count - len(bad)
    if good_per_pass <= 0:
        raise ValueError("every record of the data set is bad")
    index, remaining = divmod(consumed, good_per_pass)
    if remaining == 0:
        return index * count
    bad_ids = np.array(sorted(bad), np.int64)
    seen = good = 0
    for ids in one_pass(records, count, seed, index, shuffle_buffer, copies).map(
            lambda record: record["id"]).batch(65536).as_numpy_iterator():
        cumulative = good + np.cumsum(~np.isin(ids, bad_ids))
        reached = np.searchsorted(cumulative, remaining)
        if reached < len(ids):
            return index * count + seen + int(reached) + 1
        seen, good = seen + len(ids), int(cumulative[-1])
    raise AssertionError("a pass holds fewer good records than counted")


def shard_size(count, worker, workers):
    """How many of `count` records `records.shard(workers, worker)` keeps."""
    return len(range(worker, count, workers))


def _with_shard_policy(dataset, policy):
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = policy
    return dataset.with_options(options)


def without_auto_sharding(dataset):
    """`dataset` marked as already split across workers: tf.distribute must not shard it
    again."""
    return _with_shard_policy(dataset, tf.data.experimental.AutoShardPolicy.OFF)


def for_evaluation(dataset):
    """`dataset` as validation data, read once per epoch:

    - split across workers by tf.distribute, every worker keeping every n-th element (it
      reads the whole of it), since every worker must step through it equally often;
    - without tf.data's autotuner. Keras makes a new iterator over validation data every
      epoch and deletes the last one first. Deleting an iterator joins its autotuning
      thread, which on TF 2.21 can take 30 or 60 s with the CPU idle (after most epochs
      of the FSDD recipe: 82 s epochs instead of 52; `benchmarks/iterator_stall.py`).
      Without the autotuner there is no such thread; AUTOTUNE parallelism then keeps its
      starting value (one call per core, at most 16)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return _with_shard_policy(dataset, tf.data.experimental.AutoShardPolicy.DATA).with_options(
        options)
