"""The cross-attention a translation used, drawn from an export's `attention` signature."""

import numpy as np

from tfformer.plots import plot_attention


def plot_cross_attention(outputs, path, example=0, layer=-1, head=None):
    """From the outputs of the `attention` signature (`source_tokens` (B, S),
    `target_tokens` (B, T), `cross_attention` (B, L, N, T, S)): one head, or every head
    of the layer in a grid. Padding rows and columns are cropped. Returns the weights
    drawn, (T', S') or (N, T', S')."""
    source = [_text(t) for t in np.asarray(outputs["source_tokens"])[example]]
    target = [_text(t) for t in np.asarray(outputs["target_tokens"])[example]]
    weights = np.asarray(outputs["cross_attention"])[example][layer]  # (N, T, S)
    columns, rows = sum(1 for t in source if t), sum(1 for t in target if t)
    weights = weights[:, :rows, :columns]
    layers = np.asarray(outputs["cross_attention"]).shape[1]
    title = f"cross-attention, layer {layer % layers}"
    if head is not None:
        weights, title = weights[head], f"{title}, head {head}"
    return plot_attention(weights, path, target[:rows], source[:columns], title=title)


def plot_translation_attention(signature, text, path, layer=-1, head=None):
    """Translates `text` with an export's `attention` signature, prints the translation
    and draws its cross-attention to `path`."""
    import tensorflow as tf

    outputs = signature(text=tf.constant([text]))
    print(outputs["translation"].numpy()[0].decode("utf-8"))
    return plot_cross_attention(outputs, path, layer=layer, head=head)


def _text(token):
    return token.decode("utf-8", "replace") if isinstance(token, bytes) else str(token)
