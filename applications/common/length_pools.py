"""Batches of like length from an endless stream, each holding exactly `batch_size` examples.

Padding to the longest example of a batch wastes compute when lengths vary, so examples are
batched by length. `tf.data`'s `bucket_by_sequence_length` keeps partly filled buckets
across batches: how many stream examples a batch took then depends on everything before it,
and a resumed run could not find its place without replaying. Here each pool of
`pool_batches * batch_size` consecutive examples is sorted by bucket (stably: the stream's
random order stays within a bucket), cut into batches, and the batches are served in an
order seeded by the pool's index. Every batch holds exactly `batch_size` examples and every
pool is a function of its own examples, so a run resumed after n batches starts at the pool
that batch n is in and skips the batches of it already served (`resume_point`).
"""

import tensorflow as tf


def resume_point(consumed, batch_size, pool_batches):
    """(index of the pool, examples before it, batches of it to skip) after `consumed`
    examples."""
    pool = pool_batches * batch_size
    index, within = divmod(consumed, pool)
    return index, index * pool, within // batch_size


def pooled_batches(examples, bucket_of, batch_size, pool_batches, seed, first_pool=0,
                   skip_batches=0):
    """examples (dicts of tensors, variable-length ones along their first axis) -> dicts of
    [batch_size, ...] tensors, RaggedTensor where lengths vary: pad them after.

    `bucket_of(pool)` gives each example of a pool (the dict batched, ragged where lengths
    vary) an int bucket; `first_pool` is the index of the first pool, which seeds its batch
    order; `skip_batches` of the first pool are dropped."""

    def arrange(index, pool):
        order = tf.argsort(bucket_of(pool), stable=True)
        order = tf.reshape(order, [pool_batches, batch_size])
        order = tf.gather(order, tf.random.experimental.stateless_shuffle(
            tf.range(pool_batches), seed=tf.stack([tf.constant(seed, tf.int64), index])))
        order = tf.reshape(order, [-1])

        def cut(values):
            values = tf.gather(values, order)
            if isinstance(values, tf.RaggedTensor):
                return tf.RaggedTensor.from_uniform_row_length(values, batch_size)
            return tf.reshape(values, tf.concat([[pool_batches, batch_size],
                                                 tf.shape(values)[1:]], 0))

        return tf.nest.map_structure(cut, pool)

    batches = (examples.ragged_batch(pool_batches * batch_size, drop_remainder=True)
               .enumerate(start=first_pool).map(arrange).unbatch())
    return batches.skip(skip_batches) if skip_batches else batches
