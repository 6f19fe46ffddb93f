"""Importing TensorFlow for a command without its C++ start-up lines on the terminal."""

import contextlib
import os
import sys


@contextlib.contextmanager
def _stderr_to_devnull():
    """Points file descriptor 2 at /dev/null for the block, for C++ code as well as Python."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow(verbose=False):
    """Imports TensorFlow and lists its devices, quietly unless `verbose`.

    TensorFlow's C++ side logs at start-up before its log level applies (oneDNN notices,
    "Could not find cuda drivers", "failed call to cuInit" on every CPU machine), which no
    environment variable silences, so standard error is muted while it starts; Python
    exceptions still propagate. Later logs follow TF_CPP_MIN_LOG_LEVEL (2: errors only).
    """
    if verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if verbose or "tensorflow" in sys.modules:
        import tensorflow as tf
        return tf
    with _stderr_to_devnull():
        import tensorflow as tf
        tf.config.list_physical_devices()  # where the CUDA probing logs
    return tf
