import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfformer")
class SinusoidalPositionEncoding(keras.layers.Layer):
    """The fixed sinusoidal encoding of Vaswani et al. (2017).

    PE(pos, 2i) = sin(pos / base^(2i/D)), PE(pos, 2i+1) = cos(pos / base^(2i/D)).
    Works for any length at call time; has no weights.

    Args:
        base: float, default 10000. The wavelength base.
        layout: str, default "interleaved". Where the sines and cosines go:
            "interleaved", as above (the paper's); "halves", the same sines first
            ([sin(pos / base^(2i/D)) for each i], then the cosines), as Marian
            (opus-mt) checkpoints were trained with. For an odd D the sines take
            the extra column, as Marian's do.

    Call arguments:
        inputs: (B, T, D) tensor; only its shape is used.
        start_index: int or scalar tensor, default 0. Position of the first
            step (for decoding with a cache).

    Returns:
        The encoding broadcast to the input's shape (B, T, D), in the layer's
        compute dtype; add it to the inputs yourself.

    Example:

    >>> import numpy as np
    >>> x = np.zeros((2, 7, 16), "float32")
    >>> encoded = x + SinusoidalPositionEncoding()(x)
    >>> tuple(encoded.shape)
    (2, 7, 16)
    """

    LAYOUTS = ("interleaved", "halves")

    def __init__(self, base=10000.0, layout="interleaved", **kwargs):
        super().__init__(**kwargs)
        if base <= 0:
            raise ValueError(f"base must be positive, got base={base}")
        if layout not in self.LAYOUTS:
            raise ValueError(f"layout must be one of {self.LAYOUTS}, got layout={layout!r}")
        self.base = base
        self.layout = layout
        self.supports_masking = True
        self.built = True

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        length, width = shape[-2], inputs.shape[-1]
        positions = ops.arange(length, dtype="float32") + ops.cast(start_index, "float32")
        dims = ops.arange(width, dtype="int32")
        if self.layout == "halves":  # column d < ceil(D/2) is sine i = d, the rest cosine i
            sines = (width + 1) // 2
            is_sine = dims < sines
            dims = ops.where(is_sine, 2 * dims, 2 * (dims - sines) + 1)  # interleaved column
        else:
            is_sine = dims % 2 == 0
        even_dims = ops.cast(dims - dims % 2, "float32")  # 2i for both 2i and 2i+1
        inverse_frequency = ops.power(ops.cast(self.base, "float32"), -even_dims / width)
        angles = ops.einsum("t,d->td", positions, inverse_frequency)  # (T, D)
        encoding = ops.where(is_sine, ops.sin(angles), ops.cos(angles))  # (T, D)
        return ops.broadcast_to(ops.cast(encoding, self.compute_dtype), shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(base=self.base, layout=self.layout)
        return config
