"""Test setup: quiet TensorFlow, two logical CPUs for MirroredStrategy tests."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tensorflow as tf

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )
except RuntimeError:  # already initialised by an earlier import
    pass

# A script that tests run in a fresh interpreter (TensorFlow and tf-text only), not a module;
# and the scripts that make golden fixtures, which need torch and transformers (run by hand).
collect_ignore = ["tests/support/fresh_serving.py"]
collect_ignore_glob = ["tests/fixtures/*"]
