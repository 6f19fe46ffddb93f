"""Choosing a tf.distribute strategy by name, and what a strategy says about this process."""

import json
import os

import tensorflow as tf

from applications.common.run_options import STRATEGIES


def make_strategy(name="auto", tpu_address=None):
    """`auto`: mirrored over all GPUs if there are several, one device otherwise.
    One device is TensorFlow's default strategy (the first GPU, else the CPU)."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {STRATEGIES}")
    if name == "multi_worker":
        check_tf_config(os.environ.get("TF_CONFIG"))
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


def check_tf_config(text):
    """Fails with the problem named unless `text` is a usable multi-worker TF_CONFIG:
    {"cluster": {"worker": ["host:port", ...], ...}, "task": {"type": ..., "index": ...}}."""
    if not text:
        raise ValueError("--strategy multi_worker needs the TF_CONFIG environment variable "
                         '(e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, '
                         '"task": {"type": "worker", "index": 0}})')
    try:
        spec = json.loads(text)
    except ValueError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON: {error}") from None
    cluster, task = spec.get("cluster"), spec.get("task")
    if not isinstance(cluster, dict) or not cluster.get("worker") and not cluster.get("chief"):
        raise ValueError(f"TF_CONFIG has no cluster with workers: {text}")
    if not isinstance(task, dict) or "type" not in task:
        raise ValueError(f"TF_CONFIG has no task (type and index) for this process: {text}")
    members = cluster.get(task["type"])
    index = task.get("index", 0)
    if not isinstance(members, list) or not isinstance(index, int) \
            or not 0 <= index < len(members):
        raise ValueError(f"TF_CONFIG's task {task} is not in its cluster {cluster}")


def worker_devices(strategy):
    """The devices the strategy computes on, e.g. ["/job:localhost/.../device:GPU:0"]."""
    try:
        return strategy.extended.worker_devices
    except RuntimeError:  # TensorFlow's default strategy: the first GPU, else the CPU
        return ["GPU"] if tf.config.list_physical_devices("GPU") else ["CPU"]


def is_multi_worker(strategy):
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def task(strategy):
    """(task type, task index) of this process; ("worker", 0) outside a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return "worker", 0
    return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy):
    """The chief: task "chief", or worker 0 in a cluster without one."""
    if not is_multi_worker(strategy):
        return True
    task_type, index = task(strategy)
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    return task_type == "chief" or (task_type == "worker" and index == 0 and "chief" not in cluster)


def input_worker(strategy):
    """(index, count) of this process among the processes that read training input: the
    chief (if any) first, then the workers; (0, 1) outside a cluster."""
    if not is_multi_worker(strategy):
        return 0, 1
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec()
    tasks = [(job, index) for job in ("chief", "worker") if job in spec.jobs
             for index in range(spec.num_tasks(job))]
    return tasks.index((resolver.task_type, int(resolver.task_id or 0))), len(tasks)
