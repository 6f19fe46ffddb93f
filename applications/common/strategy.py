"""Choosing a tf.distribute strategy by name."""

import tensorflow as tf

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")


def make_strategy(name="auto", tpu_address=None):
    """`auto`: mirrored over all GPUs if there are several, one device otherwise.
    One device is TensorFlow's default strategy (the first GPU, else the CPU)."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {STRATEGIES}")
    if name == "multi_worker":
        # Before anything else touches TensorFlow's runtime: collective ops must be
        # configured at program startup.
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one_device"
    if name == "one_device":
        if len(gpus) <= 1:
            # TensorFlow's default strategy: the one device, without Keras' distributed
            # pre-pass over the training data (which would open an extra iterator and shift
            # a resumed run's shuffle order).
            return tf.distribute.get_strategy()
        return tf.distribute.OneDeviceStrategy(gpus[0].name)
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address or "")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
