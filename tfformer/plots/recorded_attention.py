"""The attention weights a model's layers used in one forward pass, recorded as it runs."""

import numpy as np

from tfformer.layers import MultiHeadAttention


def attention_weights(model, inputs):
    """{layer path: weights (B, N, T, S)} of every tfformer attention layer in `model`,
    recorded while the model runs once, eagerly, on `inputs` (inference mode).

    The weights are the ones the layers used, not a second computation.
    """
    attention_layers = [layer for layer in model._flatten_layers(include_self=True)
                        if isinstance(layer, MultiHeadAttention)]
    if not attention_layers:
        raise ValueError(f"{model.name} has no tfformer MultiHeadAttention layers")
    recorded = {}

    def recorder(layer):
        original = layer.attend

        def attend(*args, **kwargs):
            context, weights = original(*args, **kwargs)
            recorded[layer.path] = np.asarray(weights)
            return context, weights

        return attend

    for layer in attention_layers:
        layer.attend = recorder(layer)  # an instance attribute shadows the method
    try:
        model(inputs, training=False)
    finally:
        for layer in attention_layers:
            del layer.attend
    return recorded
