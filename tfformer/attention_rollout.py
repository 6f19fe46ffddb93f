"""Attention rollout (Abnar & Zuidema, 2020): how much each input token reaches each output
token through a stack of attention layers, residual paths included."""

from keras import ops


def attention_rollout(weights, residual=0.5):
    """Rolls attention out through the layers.

    Args:
        weights: list over layers, first to last, of (B, N, T, T) attention
            weights, or one (B, L, N, T, T) tensor.
        residual: weight of the identity (the skip connection) mixed into
            each layer's head-averaged attention before rows are renormalised.

    Returns:
        (B, T, T): row i is how much each input token contributes to output
        token i; rows sum to 1. For a ViT, row 0 (the class token) over
        columns 1: is the picture overlaid on the image.

    Example:

    >>> import numpy as np
    >>> uniform = np.full((1, 2, 3, 3), 1 / 3, "float32")
    >>> np.round(np.asarray(attention_rollout([uniform, uniform]))[0, 0], 3).tolist()
    [0.5, 0.25, 0.25]
    """
    if not isinstance(weights, (list, tuple)):
        weights = [weights[:, layer] for layer in range(weights.shape[1])]
    if not weights:
        raise ValueError("attention_rollout needs the weights of at least one layer")
    if not 0.0 <= residual <= 1.0:
        raise ValueError(f"residual must be in [0, 1], got residual={residual}")
    rollout = None
    for layer_weights in weights:
        mixed = ops.mean(ops.cast(layer_weights, "float32"), axis=1)  # (B, T, T)
        eye = ops.eye(ops.shape(mixed)[-1], dtype="float32")[None]
        mixed = (1.0 - residual) * mixed + residual * eye
        mixed = mixed / ops.sum(mixed, axis=-1, keepdims=True)
        rollout = mixed if rollout is None else ops.matmul(mixed, rollout)
    return rollout
