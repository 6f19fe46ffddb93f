"""Seeds for stateless random ops that differ between the replicas of a strategy.

A Keras `SeedGenerator`'s state is one variable, mirrored under a
`tf.distribute` strategy, so every replica draws the same seed and the
same dropout or SpecAugment masks for its share of the batch. Layers that
draw random numbers take their seed from `replica_seed` instead.
"""

import tensorflow as tf


def replica_seed(seed_generator):
    """The generator's next seed as int32 (2,) for `tf.random.stateless_*`, offset by the
    replica's index (0 outside a strategy)."""
    seed = seed_generator.next()
    if seed.dtype != tf.int32:  # Keras' seed state is int64 on TF; stateless ops want int32
        seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
    context = tf.distribute.get_replica_context()
    replica = 0 if context is None else context.replica_id_in_sync_group
    return seed + tf.stack([0, tf.cast(replica, tf.int32)])
