import keras
import tensorflow as tf
from keras import ops

from tfformer.replica_seeds import replica_seed


@keras.saving.register_keras_serializable(package="tfformer")
class SpecAugment(keras.layers.Layer):
    """SpecAugment time and frequency masking (Park et al., 2019), training only.

    Each example gets its own masks (and each replica of a strategy its own
    draws, see `tfformer.replica_seeds`): `frequency_masks` bands of up to
    `frequency_mask_width` mel bins and `time_masks` spans of up to
    `time_mask_width` frames, drawn inside the example's valid frames, set
    to `mask_value` (0 = the mean of normalised features). At inference
    (`training` false) the input passes through unchanged.

    Args:
        frequency_masks: int, default 2.
        frequency_mask_width: int, default 15 (bins).
        time_masks: int, default 2.
        time_mask_width: int, default 20 (frames).
        mask_value: float, default 0.
        seed: int or None.

    Call arguments:
        features: (B, F, M).
        mask: (B, F) bool frame mask; defaults to the Keras mask. Passed on.
        training: bool.

    Returns:
        (B, F, M), same dtype.

    Example:

    >>> import numpy as np
    >>> x = np.ones((2, 50, 40), "float32")
    >>> y = SpecAugment(seed=1)(x, training=True)
    >>> bool((np.asarray(y) == 0).any()), bool((np.asarray(SpecAugment()(x)) == x).all())
    (True, True)
    """

    def __init__(self, frequency_masks=2, frequency_mask_width=15, time_masks=2,
                 time_mask_width=20, mask_value=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("frequency_masks", frequency_masks),
                            ("frequency_mask_width", frequency_mask_width),
                            ("time_masks", time_masks), ("time_mask_width", time_mask_width)):
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {name}={value!r}")
        self.frequency_masks = frequency_masks
        self.frequency_mask_width = frequency_mask_width
        self.time_masks = time_masks
        self.time_mask_width = time_mask_width
        self.mask_value = mask_value
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def _spans(self, count, max_width, limits, positions):
        """(B, L) True inside any of `count` random spans per example, each up to `max_width`
        long and inside [0, limit) for that example's limit (B,)."""
        batch = ops.shape(limits)[0]
        covered = ops.zeros((batch, ops.shape(positions)[0]), "bool")
        for _ in range(count):
            width = tf.random.stateless_uniform((batch,), replica_seed(self.seed_generator),
                                                minval=0, maxval=max_width + 1, dtype=tf.int32)
            width = ops.minimum(width, limits)
            room = ops.cast(limits - width + 1, "float32")
            start = ops.cast(
                tf.random.stateless_uniform((batch,), replica_seed(self.seed_generator)) * room,
                "int32")
            inside = ops.logical_and(positions[None, :] >= start[:, None],
                                     positions[None, :] < (start + width)[:, None])  # (B, L)
            covered = ops.logical_or(covered, inside)
        return covered

    def call(self, features, mask=None, training=None):
        if not training or (self.frequency_masks == 0 and self.time_masks == 0):
            return features
        batch, frames, bins = ops.shape(features)[0], ops.shape(features)[1], features.shape[-1]
        if mask is None:
            lengths = ops.full((batch,), frames, "int32")
        else:
            lengths = ops.sum(ops.cast(mask, "int32"), axis=1)
        frequency = self._spans(self.frequency_masks, self.frequency_mask_width,
                                ops.full((batch,), bins, "int32"), ops.arange(bins))  # (B, M)
        time = self._spans(self.time_masks, self.time_mask_width, lengths,
                           ops.arange(frames))  # (B, F)
        masked = ops.logical_or(frequency[:, None, :], time[:, :, None])  # (B, F, M)
        return ops.where(masked, ops.cast(self.mask_value, features.dtype), features)

    def compute_mask(self, features, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(frequency_masks=self.frequency_masks,
                      frequency_mask_width=self.frequency_mask_width,
                      time_masks=self.time_masks, time_mask_width=self.time_mask_width,
                      mask_value=self.mask_value, seed=self.seed)
        return config
