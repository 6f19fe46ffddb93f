"""Attention weights drawn as maps: heads over tokens, and a rollout over an image."""

import numpy as np

from tfformer.plots.figures import pyplot, save
from tfformer.plots.recorded_attention import attention_weights


def plot_attention(scores, path, query_labels=None, key_labels=None, title="attention"):
    """Attention weights (T, S), or (N, T, S) drawn as a grid of heads, with tokens as
    tick labels. Returns the weights drawn."""
    scores = np.asarray(scores, dtype="float32")
    heads = scores[None] if scores.ndim == 2 else scores
    if heads.ndim != 3:
        raise ValueError(f"scores must be (T, S) or (N, T, S), got shape {scores.shape}")
    columns = int(np.ceil(np.sqrt(len(heads))))
    rows = int(np.ceil(len(heads) / columns))
    height, width = heads.shape[1:]
    cell = max(2.5, 0.28 * max(height, width))
    plt = pyplot()
    figure, axes = plt.subplots(rows, columns, figsize=(cell * columns, cell * rows),
                                squeeze=False)
    for index, axis in enumerate(axes.flat):
        if index >= len(heads):
            axis.axis("off")
            continue
        axis.imshow(heads[index], cmap="viridis", vmin=0.0, vmax=max(1e-6, heads.max()),
                    interpolation="nearest")
        axis.set_title(f"head {index}" if len(heads) > 1 else title, fontsize=9)
        if key_labels is not None:
            axis.set_xticks(range(width), key_labels, rotation=90, fontsize=7)
        if query_labels is not None:
            axis.set_yticks(range(height), query_labels, fontsize=7)
    if len(heads) > 1:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    save(figure, path)
    return scores


def plot_rollout(image, rollout, path, title="attention rollout"):
    """An attention-rollout map (grid, grid) over an image (H, W, 3) uint8: the image, and
    the map stretched over it, side by side. Returns the map drawn."""
    image, rollout = np.asarray(image), np.asarray(rollout, dtype="float32")
    if rollout.ndim != 2 or image.ndim != 3:
        raise ValueError(f"need an image (H, W, 3) and a rollout (grid, grid), got "
                         f"{image.shape} and {rollout.shape}")
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(7, 3.6))
    extent = (0, image.shape[1], image.shape[0], 0)
    left.imshow(image, extent=extent)
    left.set_title("input", fontsize=9)
    right.imshow(image, extent=extent)
    right.imshow(rollout, cmap="inferno", alpha=0.6, extent=extent, interpolation="bilinear")
    right.set_title(title, fontsize=9)
    for axis in (left, right):
        axis.axis("off")
    figure.tight_layout()
    save(figure, path)
    return rollout


def plot_self_attention(model, inputs, path, layer=0, example=0, labels=None):
    """Every head of one attention layer of `model` for one example; `layer` is an
    index into the attention layers in call order or a layer path. Returns the
    (N, T, S) weights drawn."""
    weights = attention_weights(model, inputs)
    name = layer if isinstance(layer, str) else list(weights)[layer]
    return plot_attention(weights[name][example], path, labels, labels, title=name)
