"""Choosing a tf.distribute strategy by name."""

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


def fp16_problem(device_type, compute_capability=None):
    """Why float16 compute does not suit a device ("TPU", "GPU" or "CPU"), or None.

    TPUs compute in bfloat16. GPUs before compute capability 7.0 (Volta) have no
    float16 tensor cores, so fp16 there only adds loss scaling. CPUs are allowed:
    TensorFlow's float16 kernels are exact but slow there, which still lets a
    loss-scaled run be tried on a laptop before it moves to a GPU.
    """
    if device_type == "TPU":
        return "TPUs compute in bfloat16, not float16; use --mixed-precision bf16"
    if device_type == "GPU" and compute_capability and tuple(compute_capability) < (7, 0):
        major, minor = compute_capability
        return (f"this GPU (compute capability {major}.{minor}) has no float16 tensor cores, "
                "which need 7.0 or newer; train in float32, or bf16 on 8.0 or newer")
    return None


def check_mixed_precision(mixed_precision, strategy):
    """Fails before training when `--mixed-precision fp16` meets a device that can't."""
    if mixed_precision != "fp16":
        return
    if isinstance(strategy, tf.distribute.TPUStrategy):
        problems = [fp16_problem("TPU")]
    elif any("GPU" in device for device in _devices(strategy)):
        problems = [fp16_problem("GPU", tf.config.experimental.get_device_details(gpu).get(
            "compute_capability")) for gpu in tf.config.list_physical_devices("GPU")]
    else:
        problems = []
    problems = [problem for problem in problems if problem]
    if problems:
        raise ValueError(f"--mixed-precision fp16: {problems[0]}")


def _devices(strategy):
    try:
        return strategy.extended.worker_devices
    except RuntimeError:  # TensorFlow's default strategy: the first GPU, else the CPU
        return ["GPU"] if tf.config.list_physical_devices("GPU") else ["CPU"]
