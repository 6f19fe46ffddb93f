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

# The files that take a minute or more (each trains or imports a model), longest first. Two
# pytest-xdist workers deal out whole files in collection order; when a long file comes last,
# one worker runs it alone while the other idles (about 2 of 15 minutes). Longest first, the
# short files fill in at the end and both workers finish together.
_LONGEST_FIRST = [
    "tests/applications/speech_recognition/test_speech_recognition_end_to_end.py",
    "tests/applications/test_training.py",
    "tests/applications/translation/test_marian_import.py",
    "tests/applications/image_classification/test_vit_import.py",
    "tests/applications/translation/test_translation_end_to_end.py",
    "tests/applications/test_mirrored_trajectory.py",
    "tests/applications/image_classification/test_image_classification_end_to_end.py",
    "tests/applications/test_resume_after_kill.py",
    "tests/applications/speech_recognition/test_live_stream.py",
    "tests/applications/test_no_run_is_lost.py",
    "tests/applications/test_one_run_per_workdir.py",
    "tests/applications/test_interrupt.py",
    "tests/applications/test_multi_worker.py",
    "tests/test_readme.py",
]


def pytest_collection_modifyitems(config, items):
    rank = {path: index for index, path in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
