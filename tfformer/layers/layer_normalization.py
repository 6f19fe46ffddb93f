import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfformer")
class LayerNormalization(keras.layers.LayerNormalization):
    """`keras.layers.LayerNormalization` with a fused forward and backward pass in training.

    Keras 3 normalises with about ten separate TF ops (moments, rsqrt,
    scale, shift, casts) and differentiates them op by op: in graph mode on
    CPU each is its own pass over memory, and the layer norms of a d256
    encoder-decoder took about a sixth of its `mixed_bfloat16` training
    step's op time (`benchmarks/profile_training.py`). TF has no fused
    layer-norm op to call instead, so in training (`training=True`, as
    `fit` passes it) the forward and the backward pass here are each one
    XLA-compiled function inside the otherwise uncompiled step, computing
    in float32 whatever the input dtype; the step ran about 7% faster
    (`benchmarks/speed_training.py`). Outside training the layer runs Keras'
    own ops, so exported SavedModels hold no XLA-compiled function (TF
    Serving does not compile XLA on CPU by default). Same arguments, config,
    weights and results (to float32 rounding) as Keras' layer; the fused path
    covers normalisation over the last axis without `rms_scaling`, the
    common case, and anything else falls back to Keras' ops.

    Shapes: (..., D) -> (..., D). Keras masks pass through.

    Example:
        >>> layer = LayerNormalization(epsilon=1e-6)
        >>> outputs = layer(tf.random.normal([2, 8, 16]), training=True)
        >>> outputs.shape
        TensorShape([2, 8, 16])
        >>> round(float(tf.math.reduce_std(outputs[0, 0])), 3)
        1.0
    """

    def build(self, input_shape):
        super().build(input_shape)
        rank, width = len(input_shape), input_shape[-1]
        self._fusable = (not self.rms_scaling and width is not None
                         and [axis % rank for axis in self.axis] == [rank - 1])

    def call(self, inputs, training=False):
        if not (training and self._fusable):
            return super().call(inputs)
        width = inputs.shape[-1]
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([width])
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([width])
        outputs = _fused_layer_normalization(inputs, gamma, beta, float(self.epsilon))
        return tf.cast(outputs, self.compute_dtype)


def _fused_layer_normalization(inputs, gamma, beta, epsilon):
    @tf.custom_gradient
    def normalise(inputs, gamma, beta):
        outputs, mean, inverse_std = _forward(inputs, gamma, beta, epsilon)

        def gradient(upstream):
            return _backward(upstream, inputs, gamma, mean, inverse_std)

        return outputs, gradient

    return normalise(inputs, gamma, beta)


@tf.function(jit_compile=True)
def _forward(inputs, gamma, beta, epsilon):
    """(..., D) outputs in the input's dtype, and the float32 (..., 1) mean and 1/std."""
    x = tf.cast(inputs, tf.float32)
    mean = tf.reduce_mean(x, axis=-1, keepdims=True)
    centred = x - mean
    inverse_std = tf.math.rsqrt(tf.reduce_mean(tf.square(centred), axis=-1, keepdims=True)
                                + epsilon)
    return tf.cast(centred * inverse_std * gamma + beta, inputs.dtype), mean, inverse_std


@tf.function(jit_compile=True)
def _backward(upstream, inputs, gamma, mean, inverse_std):
    """Gradients for the inputs (their dtype), gamma and beta (float32)."""
    width = gamma.shape[0]
    upstream_2d = tf.reshape(tf.cast(upstream, tf.float32), [-1, width])  # (N, D)
    inverse_std = tf.reshape(inverse_std, [-1, 1])  # (N, 1)
    normalised = (tf.reshape(tf.cast(inputs, tf.float32), [-1, width])
                  - tf.reshape(mean, [-1, 1])) * inverse_std  # (N, D)
    # Sums over rows as a (1, N) @ (N, D) product: XLA's CPU column reduction
    # took longer than the whole rest of this function.
    ones = tf.ones([1, tf.shape(upstream_2d)[0]])
    gamma_gradient = tf.matmul(ones, upstream_2d * normalised)[0]  # (D,)
    beta_gradient = tf.matmul(ones, upstream_2d)[0]  # (D,)
    scaled = upstream_2d * gamma
    inputs_gradient = inverse_std * (
        scaled - tf.reduce_mean(scaled, axis=-1, keepdims=True)
        - normalised * tf.reduce_mean(scaled * normalised, axis=-1, keepdims=True))
    inputs_gradient = tf.reshape(tf.cast(inputs_gradient, inputs.dtype), tf.shape(inputs))
    return inputs_gradient, gamma_gradient, beta_gradient
