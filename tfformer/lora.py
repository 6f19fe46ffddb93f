"""LoRA fine-tuning of any Keras model built from tfformer's layers.

Keras gives each `Dense`, `EinsumDense` (so every tfformer projection) and
`Embedding` an `enable_lora(rank)` that freezes its kernel and adds two trainable
low-rank factors, the second starting at zero. What Keras leaves to the model is
choosing the layers and freezing everything else; KerasHub does that only for its
own backbones (`Backbone.enable_lora`), so this module does it for any model.

Example:

>>> import keras, numpy as np
>>> from tfformer import layers
>>> inputs = keras.Input((None, 16))
>>> model = keras.Model(inputs, layers.TransformerEncoder(1, 16, 2, 32)(inputs))
>>> len(enable_lora(model, rank=4))  # query, key, value, attention_output, 2 feed-forward
6
>>> sorted({w.path.rsplit("/", 1)[-1] for w in model.trainable_weights})
['lora_kernel_a', 'lora_kernel_b']
"""

import keras


def enable_lora(model, rank, target_names=None):
    """Freezes every weight of `model` (biases too) and gives LoRA factors of `rank` to its
    projections: every Dense and EinsumDense, or only those whose name is in
    `target_names` (e.g. `("query", "value")`, the choice of the LoRA paper and
    KerasHub). The model's outputs are unchanged until the factors train.
    Returns the paths of the layers that got LoRA."""
    projections = [layer for layer in model._flatten_layers(include_self=False)
                   if isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense))
                   and (target_names is None or layer.name in target_names)]
    if not projections:
        raise ValueError(f"no Dense or EinsumDense layer named one of {target_names} in "
                         f"{model.name}")
    for layer in model._flatten_layers(include_self=False):
        layer.trainable = False
    for layer in projections:
        layer.trainable = True
        layer.enable_lora(rank)  # freezes the kernel
        if getattr(layer, "bias", None) is not None:
            layer.bias.trainable = False
    return [layer.path for layer in projections]
