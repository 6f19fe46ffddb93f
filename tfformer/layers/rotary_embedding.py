import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfformer")
class RotaryEmbedding(keras.layers.Layer):
    """Rotary position embedding (RoPE, Su et al., 2021).

    Rotates pairs of features by an angle proportional to the position, so the
    dot product of a rotated query at position i and a rotated key at j
    depends on i - j only. Features are paired as (x[k], x[k + H/2])
    (the "rotate half" layout used by GPT-NeoX and KerasHub).

    Args:
        max_wavelength: int, default 10000. The longest wavelength.
        sequence_axis: int, default 1. The position axis of the inputs.

    Call arguments:
        inputs: (B, T, H) or (B, T, N, H) float tensor; H must be even.
        start_index: int or scalar tensor, default 0. Position of the first
            element along `sequence_axis` (used with a KV cache).

    Returns:
        Tensor of the same shape and dtype, rotated.

    Example:

    >>> import numpy as np
    >>> x = np.ones((2, 5, 4, 8), "float32")   # (B, T, N, H)
    >>> tuple(RotaryEmbedding()(x).shape)
    (2, 5, 4, 8)
    """

    def __init__(self, max_wavelength=10000, sequence_axis=1, **kwargs):
        super().__init__(**kwargs)
        if max_wavelength <= 0:
            raise ValueError(f"max_wavelength must be positive, got max_wavelength={max_wavelength}")
        self.max_wavelength = max_wavelength
        self.sequence_axis = sequence_axis
        self.supports_masking = True
        self.built = True

    def call(self, inputs, start_index=0):
        width = inputs.shape[-1]
        if width is None or width % 2:
            raise ValueError(f"RotaryEmbedding needs an even last dimension, got shape {inputs.shape}")
        rank = len(inputs.shape)
        axis = self.sequence_axis % rank
        length = ops.shape(inputs)[axis]
        half = width // 2
        inverse_frequency = 1.0 / (
            self.max_wavelength ** (ops.arange(half, dtype="float32") / half)
        )  # (H/2,)
        positions = ops.arange(length, dtype="float32") + ops.cast(start_index, "float32")
        angles = ops.einsum("t,f->tf", positions, inverse_frequency)  # (T, H/2)
        broadcast_shape = [1] * rank
        broadcast_shape[axis] = -1
        broadcast_shape[-1] = half
        cos = ops.reshape(ops.cos(angles), broadcast_shape)
        sin = ops.reshape(ops.sin(angles), broadcast_shape)
        x = ops.cast(inputs, "float32")
        x1, x2 = x[..., :half], x[..., half:]
        rotated = ops.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
        return ops.cast(rotated, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(max_wavelength=self.max_wavelength, sequence_axis=self.sequence_axis)
        return config
