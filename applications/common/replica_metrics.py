"""Metrics summed over every replica of a strategy, so that each step's mean weighs
every example once."""

import tensorflow as tf


def global_sum(value):
    """`value` summed over all replicas when called in a replica context of a strategy
    with several; `value` itself otherwise (one device, or no strategy)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def global_mean(total, count, batch_size):
    """A loss that is this replica's share of the global batch's mean, total / count.

    `total` and `count` are this replica's sum and number of terms (tokens,
    utterances); `batch_size` its number of examples. One device: total /
    count. Several replicas: the gradient is that of total / (count over
    all replicas), so the replicas' summed gradients equal one device's;
    the value is scaled so that Keras' loss tracker (which multiplies by the
    replica count and weights by each replica's batch size) logs the global
    mean even when a batch splits unevenly.
    """
    context = tf.distribute.get_replica_context()
    total = tf.convert_to_tensor(total)
    count = tf.cast(count, total.dtype)
    if context is None or context.num_replicas_in_sync == 1:
        return total / tf.maximum(count, 1.0)
    share = total / tf.maximum(global_sum(count), 1.0)
    batch_size = tf.cast(batch_size, total.dtype)
    replicas = float(context.num_replicas_in_sync)
    logged = tf.math.divide_no_nan(share * global_sum(batch_size), replicas * batch_size)
    return share + tf.stop_gradient(logged - share)
