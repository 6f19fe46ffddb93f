"""Position encodings, drawn: each position's vector and the similarity between positions."""

import numpy as np

from tfformer.layers import PositionEmbedding, RotaryEmbedding, SinusoidalPositionEncoding
from tfformer.plots.figures import pyplot, save

POSITION_KINDS = ("sinusoidal", "learned", "rotary")


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
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    image = left.imshow(encoding, aspect="auto", cmap="RdBu", interpolation="nearest")
    left.set(title=f"{kind} encoding", xlabel="dimension", ylabel="position")
    figure.colorbar(image, ax=left)
    image = right.imshow(similarity, cmap="viridis", interpolation="nearest")
    right.set(title="dot product between positions", xlabel="position", ylabel="position")
    figure.colorbar(image, ax=right)
    figure.tight_layout()
    save(figure, path)
    return {"encoding": encoding, "similarity": similarity}
