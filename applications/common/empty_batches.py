"""Served signatures answer an empty batch with empty outputs."""

import tensorflow as tf


def answer_empty_batches(fn, *batches):
    """`fn(*batches)` (a dict of batch-major outputs), also when the batch is empty: then `fn`
    runs on one row of zeros and every output is cut back to zero rows.

    Needed because several TensorFlow CPU kernels mishandle an empty batch. Conv2D returns a
    wrongly shaped result (`ConvSubsampling` and `PatchEmbedding` now work around that
    themselves), and a whole traced model still meets others: the speech front end's padded
    RFFT, and the masks multiplied in the chunked path. One blank row avoids them all.
    """
    count = tf.shape(batches[0])[0]

    def at_least_one(batch):
        blank = tf.zeros(tf.concat([[1], tf.shape(batch)[1:]], axis=0), batch.dtype)
        return tf.cond(count > 0, lambda: batch, lambda: blank)

    outputs = fn(*[at_least_one(batch) for batch in batches])
    return {name: value[:count] for name, value in outputs.items()}
