import math

import keras
from keras import ops

from tfformer.layers.position_embedding import PositionEmbedding
from tfformer.layers.sinusoidal_position_encoding import SinusoidalPositionEncoding

POSITIONS = ("learned", "sinusoidal", "sinusoidal_halves")


@keras.saving.register_keras_serializable(package="tfformer")
class TokenAndPositionEmbedding(keras.layers.Layer):
    """Token embedding scaled by sqrt(D) plus positions.

    Args:
        vocabulary_size: int, number of token ids.
        d_model: int, D.
        sequence_length: int, size of the learned position table (required
            for `position="learned"`).
        position: "learned" (default), "sinusoidal", or "sinusoidal_halves" (the
            sines first, then the cosines: `SinusoidalPositionEncoding`'s
            `layout="halves"`, as Marian checkpoints expect).
        mask_zero: bool, default False. Id 0 is padding: the output carries a
            Keras mask (B, T), True where the id is not 0.
        padding_id: int or None, default None. Another id that is padding (Marian's
            is its last id, and its id 0 is `</s>`): the output carries a Keras
            mask, True where the id differs. Not with `mask_zero`.
        scale_embeddings: bool, default True. Multiply token embeddings by
            sqrt(D) as in the paper.
        embeddings_initializer: default "uniform" scaled to the width.

    Call arguments:
        token_ids: (B, T) int tensor.
        start_index: int or scalar tensor, default 0 (for cached decoding).

    Returns:
        (B, T, D), with a Keras mask when `mask_zero`. `reverse(x)` maps
        states (B, T, D) to logits (B, T, V) with the same table (tied
        output embeddings), quantized or not.

    Example:

    >>> import numpy as np
    >>> layer = TokenAndPositionEmbedding(100, 16, sequence_length=32, mask_zero=True)
    >>> out = layer(np.array([[5, 6, 0]]))
    >>> tuple(out.shape), layer.compute_mask(np.array([[5, 6, 0]])).numpy().tolist()
    ((1, 3, 16), [[True, True, False]])
    """

    def __init__(
        self,
        vocabulary_size,
        d_model,
        sequence_length=None,
        position="learned",
        mask_zero=False,
        scale_embeddings=True,
        embeddings_initializer=None,
        padding_id=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("vocabulary_size", vocabulary_size), ("d_model", d_model)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {name}={value!r}")
        if position not in POSITIONS:
            raise ValueError(f"position must be one of {POSITIONS}, got position={position!r}")
        if position == "learned" and sequence_length is None:
            raise ValueError("position='learned' needs sequence_length (the table size)")
        if padding_id is not None and (mask_zero or not isinstance(padding_id, int)
                                       or not 0 <= padding_id < vocabulary_size):
            raise ValueError(f"padding_id must be an id below vocabulary_size={vocabulary_size}"
                             f" and not set with mask_zero, got padding_id={padding_id!r}, "
                             f"mask_zero={mask_zero}")
        self.vocabulary_size = vocabulary_size
        self.d_model = d_model
        self.sequence_length = sequence_length
        self.position = position
        self.mask_zero = mask_zero
        self.scale_embeddings = scale_embeddings
        self.embeddings_initializer = embeddings_initializer
        self.padding_id = padding_id
        initializer = embeddings_initializer or keras.initializers.RandomNormal(
            stddev=d_model**-0.5
        )
        # Reversible, so tied output logits (`reverse`) follow Keras' quantized paths.
        self.token_embedding = keras.layers.ReversibleEmbedding(
            vocabulary_size,
            d_model,
            tie_weights=True,
            embeddings_initializer=initializer,
            mask_zero=mask_zero,
            dtype=self.dtype_policy,
            name="token_embedding",
        )
        if position == "learned":
            self.position_embedding = PositionEmbedding(
                sequence_length, dtype=self.dtype_policy, name="position_embedding"
            )
        else:
            self.position_embedding = SinusoidalPositionEncoding(
                layout="halves" if position == "sinusoidal_halves" else "interleaved",
                dtype=self.dtype_policy, name="position_embedding"
            )
        self.supports_masking = mask_zero or padding_id is not None

    def build(self, input_shape):
        self.token_embedding.build(input_shape)
        self.position_embedding.build((*input_shape, self.d_model))
        self.built = True

    def call(self, token_ids, start_index=0):
        x = self.token_embedding(token_ids)  # (B, T, D)
        if self.scale_embeddings:
            x = x * ops.cast(math.sqrt(self.d_model), x.dtype)
        return x + self.position_embedding(x, start_index=start_index)

    def reverse(self, x):
        """Logits (B, T, V) of states x (B, T, D) against the token table (tied
        output embeddings), in the compute dtype; also when the table is quantized."""
        return self.token_embedding(x, reverse=True)

    def compute_mask(self, token_ids, mask=None):
        if self.padding_id is not None:
            return ops.not_equal(token_ids, self.padding_id)
        if not self.mask_zero:
            return None
        return ops.not_equal(token_ids, 0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.d_model)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size,
            d_model=self.d_model,
            sequence_length=self.sequence_length,
            position=self.position,
            mask_zero=self.mask_zero,
            scale_embeddings=self.scale_embeddings,
            embeddings_initializer=self.embeddings_initializer,
            padding_id=self.padding_id,
        )
        return config
