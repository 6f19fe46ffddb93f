import keras

from tfformer.layers.dropout import Dropout


@keras.saving.register_keras_serializable(package="tfformer")
class FeedForward(keras.layers.Layer):
    """Position-wise feed-forward network: Dense(F) -> activation -> dropout -> Dense(D).

    Args:
        intermediate_dim: int, F.
        activation: default "relu".
        dropout: float, default 0. Dropout after the activation.
        use_bias: bool, default True.
        kernel_initializer: default "glorot_uniform".

    Call arguments:
        inputs: (B, T, D). Keras masks pass through unchanged.
        training: bool.

    Returns:
        (B, T, D).

    Example:

    >>> import numpy as np
    >>> tuple(FeedForward(32)(np.zeros((2, 5, 8), "float32")).shape)
    (2, 5, 8)
    """

    def __init__(self, intermediate_dim, activation="relu", dropout=0.0, use_bias=True,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(intermediate_dim, int) or intermediate_dim <= 0:
            raise ValueError(
                f"intermediate_dim must be a positive int, got intermediate_dim={intermediate_dim!r}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got dropout={dropout!r}")
        self.intermediate_dim = intermediate_dim
        self.activation = keras.activations.get(activation)
        self.dropout = dropout
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True

    def build(self, input_shape):
        init = keras.initializers.serialize(self.kernel_initializer)
        self._intermediate = keras.layers.Dense(
            self.intermediate_dim, activation=self.activation, use_bias=self.use_bias,
            kernel_initializer=keras.initializers.get(init), dtype=self.dtype_policy,
            name="intermediate",
        )
        self._intermediate.build(input_shape)
        self._dropout = Dropout(self.dropout, dtype=self.dtype_policy)
        self._output = keras.layers.Dense(
            input_shape[-1], use_bias=self.use_bias,
            kernel_initializer=keras.initializers.get(init), dtype=self.dtype_policy,
            name="output",
        )
        self._output.build((*input_shape[:-1], self.intermediate_dim))
        self.built = True

    def call(self, inputs, training=None):
        x = self._intermediate(inputs)  # (B, T, F)
        x = self._dropout(x, training=training)
        return self._output(x)  # (B, T, D)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            intermediate_dim=self.intermediate_dim,
            activation=keras.activations.serialize(self.activation),
            dropout=self.dropout,
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
