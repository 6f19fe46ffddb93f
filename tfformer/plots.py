"""Pictures of a model's insides: position encodings, attention maps, training curves.

Each function computes the numbers it draws, returns them, and writes a PNG,
so a test can check the picture's content and a user can reuse the numbers.
matplotlib is imported only when a picture is drawn.
"""

import os

import numpy as np

from tfformer.layers import (
    MultiHeadAttention,
    PositionEmbedding,
    RotaryEmbedding,
    SinusoidalPositionEncoding,
)

POSITION_KINDS = ("sinusoidal", "learned", "rotary")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path, dpi=100):
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    figure.savefig(path, dpi=dpi)
    _pyplot().close(figure)
    return path


def position_encoding(kind, length, d_model, layer=None):
    """(length, d_model) position vectors of `kind`.

    sinusoidal: the layer's output. learned: the rows of `layer`'s table (a
    trained `PositionEmbedding`) or of a freshly initialised one. rotary: the
    rotation applied to an all-ones vector at each position.
    """
    if kind not in POSITION_KINDS:
        raise ValueError(f"kind must be one of {POSITION_KINDS}, got {kind!r}")
    zeros = np.zeros((1, length, d_model), "float32")
    if kind == "sinusoidal":
        return np.asarray((layer or SinusoidalPositionEncoding())(zeros))[0]
    if kind == "learned":
        layer = layer or PositionEmbedding(sequence_length=length)
        return np.asarray(layer(zeros))[0]
    return np.asarray((layer or RotaryEmbedding())(np.ones((1, length, d_model), "float32")))[0]


def plot_positions(kind="sinusoidal", length=64, d_model=128, path="positions.png", layer=None):
    """Heat map of the encoding (positions x dimensions) beside the dot-product
    similarity between positions. Returns {"encoding", "similarity"}."""
    encoding = position_encoding(kind, length, d_model, layer)
    similarity = encoding @ encoding.T  # (length, length)
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    image = left.imshow(encoding, aspect="auto", cmap="RdBu", interpolation="nearest")
    left.set(title=f"{kind} encoding", xlabel="dimension", ylabel="position")
    figure.colorbar(image, ax=left)
    image = right.imshow(similarity, cmap="viridis", interpolation="nearest")
    right.set(title="dot product between positions", xlabel="position", ylabel="position")
    figure.colorbar(image, ax=right)
    figure.tight_layout()
    _save(figure, path)
    return {"encoding": encoding, "similarity": similarity}


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
    plt = _pyplot()
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
    _save(figure, path)
    return scores


def plot_cross_attention(outputs, path, example=0, layer=-1, head=None):
    """The cross-attention a translation used, from the outputs of an export's `attention`
    signature (`source_tokens` (B, S), `target_tokens` (B, T), `cross_attention`
    (B, L, N, T, S)): one head, or every head of the layer in a grid. Padding rows and
    columns are cropped. Returns the weights drawn, (T', S') or (N, T', S')."""
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


def plot_rollout(image, rollout, path, title="attention rollout"):
    """An attention-rollout map (grid, grid) over an image (H, W, 3) uint8: the image, and
    the map stretched over it, side by side. Returns the map drawn."""
    image, rollout = np.asarray(image), np.asarray(rollout, dtype="float32")
    if rollout.ndim != 2 or image.ndim != 3:
        raise ValueError(f"need an image (H, W, 3) and a rollout (grid, grid), got "
                         f"{image.shape} and {rollout.shape}")
    plt = _pyplot()
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
    _save(figure, path)
    return rollout


def _text(token):
    return token.decode("utf-8", "replace") if isinstance(token, bytes) else str(token)


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


def plot_self_attention(model, inputs, path, layer=0, example=0, labels=None):
    """Every head of one attention layer of `model` for one example; `layer` is an
    index into the attention layers in call order or a layer path. Returns the
    (N, T, S) weights drawn."""
    weights = attention_weights(model, inputs)
    name = layer if isinstance(layer, str) else list(weights)[layer]
    return plot_attention(weights[name][example], path, labels, labels, title=name)


def read_scalars(logdir):
    """{"train/epoch_loss": [(step, value), ...], ...} from TensorBoard logs under `logdir`."""
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curves = {}
    for root, _, files in os.walk(logdir):
        if not any(name.startswith("events.out.tfevents") for name in files):
            continue
        run = os.path.relpath(root, logdir)
        accumulator = EventAccumulator(root, size_guidance={"tensors": 0, "scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags().get("tensors", []):
            events = accumulator.Tensors(tag)
            values = [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in events]
            if values:
                curves[f"{run}/{tag}"] = values
        for tag in accumulator.Tags().get("scalars", []):
            curves[f"{run}/{tag}"] = [(e.step, e.value) for e in accumulator.Scalars(tag)]
    if not curves:
        raise FileNotFoundError(f"no TensorBoard scalars under {logdir}")
    return curves


def plot_training_curves(logdir, path="training_curves.png"):
    """One panel per metric (loss, learning rate, accuracy, ...), train and validation
    together. Returns the curves drawn."""
    curves = {name: values for name, values in read_scalars(logdir).items()
              if name.split("/")[-1].startswith("epoch_")}
    metrics = sorted({name.split("/")[-1] for name in curves})
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.8),
                                squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        for name, values in sorted(curves.items()):
            if name.split("/")[-1] == metric:
                steps, ys = zip(*values)
                axis.plot(steps, ys, marker="o", label=name.split("/")[0])
        axis.set(title=metric.removeprefix("epoch_"), xlabel="epoch")
        axis.legend()
    figure.tight_layout()
    _save(figure, path)
    return curves
