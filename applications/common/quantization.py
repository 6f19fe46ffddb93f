"""Post-training weight quantization of a trained model, before it is evaluated and exported.

Keras' `Model.quantize` does the work: it replaces the kernels of every Dense and
EinsumDense (tfformer's projections included) and the tables of every Embedding with
int8 or int4 values and per-channel scales. Layers that have nothing to quantize
(normalisation, softmax, the Conformer's depthwise and the subsampling convolutions)
keep their float weights, so Keras' per-layer warnings about them are not repeated.
"""

import contextlib
import gc
import warnings

import numpy as np

# Keras' "float8" is a training format (scales learned with delayed scaling), not a
# post-training one, so the applications offer the two weight-only modes.
MODES = ("none", "int8", "int4")


def weight_bytes(model):
    """Bytes the model's weights take: what a SavedModel's variables hold."""
    return sum(int(np.prod(weight.shape)) * np.dtype(weight.dtype).itemsize
               for weight in model.weights)


@contextlib.contextmanager
def frozen_garbage():
    """Keras runs `gc.collect()` for every kernel it replaces; in a process holding many
    objects (a notebook, a long test run) each pass takes seconds. Objects that exist
    before quantizing are set aside from collection meanwhile; new garbage still goes."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def quantize_for_export(model, mode, strategy=None):
    """Quantizes `model`'s weights in place with `mode` ("none" leaves it alone); prints
    how many layers changed and the weights' size before and after."""
    if mode == "none":
        return
    before = weight_bytes(model)
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope, warnings.catch_warnings(), frozen_garbage():
        warnings.filterwarnings("ignore", message=".*does not have a `quantize` method")
        # Unbuilt layers hold no weights, and Keras refuses to look at them.
        model.quantize(mode, filters=lambda layer: layer.built)
    quantized = sum(1 for layer in model._flatten_layers()
                    if getattr(layer, "quantization_mode", None) == mode)
    print(f"quantized {quantized} layers' weights to {mode}: {before / 2**20:.2f} MiB of "
          f"weights -> {weight_bytes(model) / 2**20:.2f} MiB")

