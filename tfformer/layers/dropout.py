import keras
import tensorflow as tf

from tfformer.replica_seeds import replica_seed

_BITS = 16  # random bits per element; the rate is exact to 1 / 2**16


@keras.saving.register_keras_serializable(package="tfformer")
class Dropout(keras.layers.Dropout):
    """`keras.layers.Dropout` that draws 16 random bits per element, not a float.

    Keras' dropout draws one uniform float per element, in the input's dtype.
    On CPU that generator is most of dropout's cost: a Transformer training
    step with dropout 0.1 spent about 9% of its op time in it
    (`benchmarks/profile_training.py`). Here each 32-bit draw serves two
    elements: an element is kept when its 16 bits are at least
    round(rate * 2**16), so the rate is exact to 1/65536 (a bfloat16
    uniform, which Keras draws under `mixed_bfloat16`, resolves 1/128).
    Kept elements are scaled by 1 / (1 - rate). Same arguments, config,
    seeding and `noise_shape` as Keras' layer; only the random stream differs,
    and under a `tf.distribute` strategy each replica draws its own masks
    (see `tfformer.replica_seeds`; Keras' layer draws the same mask on every
    replica).

    Shapes: any -> the same.

    Example:
        >>> layer = Dropout(0.1, seed=0)
        >>> layer(tf.ones([2, 8, 16]), training=True).shape
        TensorShape([2, 8, 16])
    """

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        if self.rate == 1:
            return tf.zeros_like(inputs)
        mask_shape = tf.shape(inputs)
        if self.noise_shape is not None:
            mask_shape = tf.stack([mask_shape[axis] if size is None else size
                                   for axis, size in enumerate(self.noise_shape)])
        keep = _keep_mask(mask_shape, self.rate, replica_seed(self.seed_generator))
        scale = tf.cast(1.0 / (1.0 - self.rate), inputs.dtype)
        return tf.where(keep, inputs * scale, tf.zeros([], inputs.dtype))


def _keep_mask(shape, rate, seed):
    """bool `shape`, True with probability 1 - rate (to 1/65536)."""
    size = tf.reduce_prod(shape)
    words = tf.random.stateless_uniform([(size + 1) // 2], seed, minval=None, maxval=None,
                                        dtype=tf.uint32)
    halves = tf.reshape(tf.bitcast(words, tf.uint16), [-1])[:size]
    threshold = min(round(rate * 2**_BITS), 2**_BITS - 1)
    return tf.reshape(halves >= tf.constant(threshold, tf.uint16), shape)
