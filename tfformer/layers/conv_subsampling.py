import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfformer")
class ConvSubsampling(keras.layers.Layer):
    """4x time reduction for speech features: two stride-2 Conv2D + ReLU, then Dense(D).

    Padding is fixed (one frame of zeros on each side of the 3-wide kernel)
    and padded frames are zeroed before every convolution, so a padded
    utterance's valid frames equal those of the utterance alone. The frame
    mask (B, F) shrinks with the time axis: ceil(ceil(F/2)/2) frames. The
    layer owns that arithmetic for everything downstream: `factor` (4),
    `output_lengths(lengths)` and `output_mask(mask)`.

    Args:
        d_model: int, D.
        filters: int, default 32. Channels of both convolutions.

    Call arguments:
        features: (B, F, M) e.g. log-mel frames.
        mask: (B, F) bool; defaults to the features' Keras mask.

    Returns:
        (B, ceil(F/4), D), carrying the shrunk mask as its Keras mask.

    Example:

    >>> import numpy as np
    >>> tuple(ConvSubsampling(d_model=32)(np.zeros((2, 50, 40), "float32")).shape)
    (2, 13, 32)
    """

    factor = 4  # frames in per frame out

    def __init__(self, d_model, filters=32, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("d_model", d_model), ("filters", filters)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {name}={value!r}")
        self.d_model = d_model
        self.filters = filters
        self._convolutions = [
            keras.layers.Conv2D(filters, 3, strides=2, padding="valid", activation="relu",
                                dtype=self.dtype_policy, name=f"conv_{i}")
            for i in range(2)
        ]
        self._projection = keras.layers.Dense(d_model, dtype=self.dtype_policy, name="projection")
        self.supports_masking = True

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"ConvSubsampling expects (B, F, M) features, got {tuple(input_shape)}")
        bins = input_shape[-1]
        shape = (input_shape[0], None, bins, 1)
        for conv in self._convolutions:
            conv.build((shape[0], None, shape[2] + 2, 1 if conv is self._convolutions[0] else self.filters))
            bins = (bins + 1) // 2
            shape = (input_shape[0], None, bins, self.filters)
        self._projection.build((input_shape[0], None, bins * self.filters))
        self.built = True

    @staticmethod
    def output_lengths(lengths):
        """Valid output frames of inputs with `lengths` valid frames: ceil(ceil(L/2)/2)."""
        for _ in range(2):  # each stride-2 convolution
            lengths = (lengths + 1) // 2
        return lengths

    @staticmethod
    def output_mask(mask):
        """The (B, F) frame mask of the input -> the (B, ceil(F/4)) mask of the output."""
        return ConvSubsampling._frame_masks(mask)[2]

    @staticmethod
    def _frame_masks(mask):
        """Masks (B, F_k) at the input and after each convolution, or Nones.

        Keeping every other frame of a prefix mask of length L keeps
        ceil(L / 2) frames: exactly the valid outputs of a stride-2 conv.
        """
        if mask is None:
            return [None, None, None]
        mask = ops.cast(mask, "bool")
        return [mask, mask[:, ::2], mask[:, ::2][:, ::2]]

    def call(self, features, mask=None):
        batch, frames = ops.shape(features)[0], ops.shape(features)[1]
        bins = features.shape[-1]
        x = ops.expand_dims(features, -1)  # (B, F, M, 1)
        frame_masks = self._frame_masks(mask)
        for conv, frame_mask in zip(self._convolutions, frame_masks):
            if frame_mask is not None:
                x = x * ops.cast(frame_mask[:, :, None, None], x.dtype)
            x = ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
            x = conv(x)
            frames, bins = (frames + 1) // 2, (bins + 1) // 2
            # Restating the shape costs nothing, and lets an empty batch through: TensorFlow's
            # CPU Conv2D gives one a wrongly shaped result.
            x = ops.reshape(x, (batch, frames, bins, self.filters))  # (B, ceil(F/2), ceil(M/2), C)
        if frame_masks[2] is not None:
            x = x * ops.cast(frame_masks[2][:, :, None, None], x.dtype)
        x = ops.reshape(x, (batch, frames, bins * self.filters))  # (B, F/4, M/4 * C)
        return self._projection(x)  # (B, F/4, D)

    def compute_mask(self, features, mask=None):
        return self.output_mask(mask)

    def compute_output_shape(self, input_shape):
        frames = input_shape[1]
        frames = None if frames is None else self.output_lengths(frames)
        return (input_shape[0], frames, self.d_model)

    def get_config(self):
        config = super().get_config()
        config.update(d_model=self.d_model, filters=self.filters)
        return config
