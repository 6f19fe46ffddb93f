"""Mixed precision: the Keras policy for a name, and whether the devices support it."""

import contextlib

import keras
import tensorflow as tf

from applications.common.run_options import PRECISIONS
from applications.common.strategy import worker_devices


@contextlib.contextmanager
def precision_policy(mixed_precision="none"):
    """Sets Keras' global dtype policy for building and training, then restores it.

    "bf16" -> mixed_bfloat16; "fp16" -> mixed_float16 (Keras then wraps the
    optimizer in a LossScaleOptimizer when the model is compiled).
    """
    if mixed_precision not in PRECISIONS:
        raise ValueError(f"mixed_precision must be one of {sorted(PRECISIONS)}, "
                         f"got {mixed_precision!r}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(PRECISIONS[mixed_precision])
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


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
    elif any("GPU" in device for device in worker_devices(strategy)):
        problems = [fp16_problem("GPU", tf.config.experimental.get_device_details(gpu).get(
            "compute_capability")) for gpu in tf.config.list_physical_devices("GPU")]
    else:
        problems = []
    problems = [problem for problem in problems if problem]
    if problems:
        raise ValueError(f"--mixed-precision fp16: {problems[0]}")
