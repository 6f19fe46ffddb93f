"""Keras' Adam and AdamW, updating each variable with one fused TensorFlow kernel.

Keras 3 writes Adam's update as about ten generic ops per variable (moment
updates, square root, division, casts, three assignments); in graph mode on
CPU each is its own pass over the variable's memory, and together they took
about 7% of a d256 encoder-decoder's training step
(`benchmarks/profile_training.py`). TensorFlow's `ResourceApplyAdam` kernel
(the one tf.keras 2 used) does the same update in one multithreaded pass and
has an XLA lowering. The classes here are Keras' optimizers with only
`update_step` swapped for that kernel: same arguments, config, slot variables,
checkpoints and schedules, same results to float32 rounding, and the step ran
about 5% faster (`benchmarks/speed_training.py`). AMSGrad falls back to Keras'
update; AdamW's decoupled weight decay is Keras' own, applied before the step.

One result differs from Keras 3, by design: an embedding's gradient arrives as
`IndexedSlices`, one slice per looked-up token, and Keras' update squares the
slices one by one, so a token seen twice in a batch gets g1**2 + g2**2 in its
second moment instead of (g1 + g2)**2. Here the slices are summed first, which
is Adam's update for the true gradient.
"""

import keras
import tensorflow as tf


class _FusedAdamUpdate:
    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        # Dense even for an embedding's IndexedSlices: Adam decays every row.
        gradient = tf.cast(tf.convert_to_tensor(gradient), dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].handle,
            v=self._velocities[index].handle,
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype), grad=gradient)


@keras.saving.register_keras_serializable(package="tfformer")
class Adam(_FusedAdamUpdate, keras.optimizers.Adam):
    """`keras.optimizers.Adam` with one fused update kernel per variable.

    Example:
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        >>> model.compile(Adam(1e-3), "mse")
        >>> history = model.fit(tf.ones([8, 4]), tf.zeros([8, 1]), verbose=0)
        >>> int(model.optimizer.iterations)
        1
    """


@keras.saving.register_keras_serializable(package="tfformer")
class AdamW(_FusedAdamUpdate, keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` with one fused update kernel per variable.

    Example:
        >>> optimizer = AdamW(0.01, weight_decay=0.1)
        >>> variable = keras.Variable(tf.ones([3]))
        >>> optimizer.apply([tf.ones([3])], [variable])
        >>> [round(float(v), 4) for v in variable.numpy()]  # 1 - lr * decay - lr (first step)
        [0.989, 0.989, 0.989]
    """
