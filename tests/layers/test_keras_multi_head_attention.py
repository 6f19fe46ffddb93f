"""Keras' own test file for `keras.layers.MultiHeadAttention`, run against ours.

The file is imported from the installed keras package, not copied: upgrading
Keras re-checks the drop-in claim. Its module-level `layers` is swapped for a
namespace that is Keras' `layers` except that `MultiHeadAttention` is ours, so
every `layers.MultiHeadAttention` in it (including the subclass some tests
define) builds our class; nothing else in the file changes. Its skips are
Keras' own: flash attention needs JAX or torch (`test_basics_with_flash_attention`,
`test_flash_attention_with_errors`), which Keras' class skips on TensorFlow too.
"""

import gc
import importlib
import types

import pytest
from keras.src import layers as keras_layers

from tfformer.layers import MultiHeadAttention

keras_test = importlib.import_module("keras.src.layers.attention.multi_head_attention_test")
layers_with_ours = types.ModuleType("layers_with_tfformer_multi_head_attention")
layers_with_ours.__dict__.update(vars(keras_layers))
layers_with_ours.MultiHeadAttention = MultiHeadAttention
keras_test.layers = layers_with_ours

# pytest collects this unittest.TestCase from here; its tests are Keras'.
MultiHeadAttentionTest = keras_test.MultiHeadAttentionTest


@pytest.fixture(autouse=True, scope="module")
def _frozen_garbage():
    """Keras' quantize runs gc.collect() per kernel, seconds each late in a long test run;
    objects from before this module are set aside from collection while it runs."""
    gc.freeze()
    yield
    gc.unfreeze()


def test_keras_file_builds_our_class():
    assert keras_test.layers.MultiHeadAttention is MultiHeadAttention
    tests = [name for name in dir(MultiHeadAttentionTest) if name.startswith("test_")]
    assert len(tests) >= 25, tests  # the file was found and is Keras' full suite
