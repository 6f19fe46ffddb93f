"""Keras' own test files for the layers README calls drop-ins, run against ours:
`MultiHeadAttention`, `Dropout`, `LayerNormalization`, and `FlatEinsumDense` for
`EinsumDense`.

Each file is imported from the installed keras package, not copied: upgrading Keras re-checks
each claim. Its module-level `layers` is swapped for a namespace that is Keras' `layers`
except for the one class, which is ours, so every `layers.X` in it (including the subclasses
some tests define) builds our class; nothing else in the file changes. The skips are Keras'
own: flash attention needs JAX or torch (`test_basics_with_flash_attention`,
`test_flash_attention_with_errors`), which Keras' class skips on TensorFlow too.
"""

import gc
import importlib
import types

import pytest
from keras.src import layers as keras_layers

from tfformer.layers import Dropout, FlatEinsumDense, LayerNormalization, MultiHeadAttention

# (Keras' test module, the class it tests, ours, the least number of tests it holds)
DROP_INS = [
    ("attention.multi_head_attention_test", "MultiHeadAttention", MultiHeadAttention, 25),
    ("regularization.dropout_test", "Dropout", Dropout, 5),
    ("normalization.layer_normalization_test", "LayerNormalization", LayerNormalization, 5),
    ("core.einsum_dense_test", "EinsumDense", FlatEinsumDense, 30),
]


def _keras_test_file(module, name, ours):
    keras_test = importlib.import_module(f"keras.src.layers.{module}")
    swapped = types.ModuleType(f"layers_with_tfformer_{name}")
    swapped.__dict__.update(vars(keras_layers))
    setattr(swapped, name, ours)
    keras_test.layers = swapped
    return keras_test


KERAS_TESTS = {name: _keras_test_file(module, name, ours) for module, name, ours, _ in DROP_INS}

# pytest collects these unittest.TestCases from here; their tests are Keras'.
MultiHeadAttentionTest = KERAS_TESTS["MultiHeadAttention"].MultiHeadAttentionTest
DropoutTest = KERAS_TESTS["Dropout"].DropoutTest
LayerNormalizationTest = KERAS_TESTS["LayerNormalization"].LayerNormalizationTest
EinsumDenseTest = KERAS_TESTS["EinsumDense"].EinsumDenseTest


@pytest.fixture(autouse=True, scope="module")
def _frozen_garbage():
    """Keras' quantize runs gc.collect() per kernel, seconds each late in a long test run;
    objects from before this module are set aside from collection while it runs."""
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.mark.parametrize("module, name, ours, least", DROP_INS)
def test_keras_files_build_our_classes(module, name, ours, least):
    assert getattr(KERAS_TESTS[name].layers, name) is ours
    test_case = globals()[f"{name}Test"]
    tests = [test for test in dir(test_case) if test.startswith("test_")]
    assert len(tests) >= least, tests  # the file was found and is Keras' full suite
