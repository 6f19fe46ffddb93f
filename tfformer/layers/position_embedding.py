import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfformer")
class PositionEmbedding(keras.layers.Layer):
    """Learned position embeddings with a maximum length.

    Args:
        sequence_length: int, the number of positions in the table.
        initializer: initializer of the table, default "glorot_uniform".

    Call arguments:
        inputs: (B, T, D) tensor; only its shape is used.
        start_index: int or scalar tensor, default 0. Position of the first
            step (for decoding with a cache).

    Returns:
        Embeddings of positions [start_index, start_index + T) broadcast to
        (B, T, D). A statically known T + start_index past `sequence_length`
        raises ValueError.

    Example:

    >>> import numpy as np
    >>> x = np.zeros((2, 5, 8), "float32")
    >>> tuple(PositionEmbedding(sequence_length=16)(x).shape)
    (2, 5, 8)
    """

    def __init__(self, sequence_length, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(sequence_length, int) or sequence_length <= 0:
            raise ValueError(
                f"sequence_length must be a positive int, got sequence_length={sequence_length!r}"
            )
        self.sequence_length = sequence_length
        self.initializer = keras.initializers.get(initializer)
        self.supports_masking = True

    def build(self, input_shape):
        self.position_embeddings = self.add_weight(
            name="embeddings",
            shape=(self.sequence_length, input_shape[-1]),
            initializer=self.initializer,
        )
        self.built = True

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        length = inputs.shape[-2]
        if length is not None and isinstance(start_index, int):
            if start_index + length > self.sequence_length:
                raise ValueError(
                    f"Sequence of length {length} (starting at {start_index}) is longer than the "
                    f"learned position table (sequence_length={self.sequence_length})"
                )
        table = ops.convert_to_tensor(self.position_embeddings)
        positions = ops.slice(table, (start_index, 0), (shape[-2], shape[-1]))  # (T, D)
        return ops.broadcast_to(ops.cast(positions, self.compute_dtype), shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            sequence_length=self.sequence_length,
            initializer=keras.initializers.serialize(self.initializer),
        )
        return config
