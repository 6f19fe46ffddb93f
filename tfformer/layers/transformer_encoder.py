import keras

from tfformer import masks as mask_lib
from tfformer.layers.block_arguments import check_block_args, check_input_width
from tfformer.layers.layer_normalization import LayerNormalization
from tfformer.layers.transformer_encoder_block import TransformerEncoderBlock


@keras.saving.register_keras_serializable(package="tfformer")
class TransformerEncoder(keras.layers.Layer):
    """A stack of `TransformerEncoderBlock`s sharing one configuration.

    With `norm_first=True` a final LayerNormalization follows the stack, as
    pre-LN models need. Stacking windowed layers grows the receptive field:
    after L layers with window (l, r), position i sees [i - L*l, i + L*r].

    Args:
        num_layers: int.
        d_model, num_heads, intermediate_dim, dropout, activation, norm_first,
        layer_norm_epsilon, window, score, distribution, use_rotary,
        activation_dropout, convolution_kernel_size: as in
        `TransformerEncoderBlock`, for every layer.

    Call arguments:
        inputs: (B, T, D).
        padding_mask: (B, T) bool; defaults to the inputs' Keras mask.
        attention_mask: (B, T, T) bool.
        attention_bias: (B|1, N|1, T, T), shared by all layers (T5 style).
        training, return_attention_scores: bool.

    Returns:
        (B, T, D), or `(outputs, [scores (B, N, T, T) per layer])`.

    Example:

    >>> import numpy as np
    >>> encoder = TransformerEncoder(2, d_model=16, num_heads=4, intermediate_dim=32)
    >>> tuple(encoder(np.zeros((2, 5, 16), "float32")).shape)
    (2, 5, 16)
    """

    def __init__(self, num_layers, d_model, num_heads, intermediate_dim, dropout=0.1,
                 activation="relu", norm_first=False, layer_norm_epsilon=1e-6, window=None,
                 score="scaled_dot", distribution="softmax", use_rotary=False,
                 activation_dropout=None, convolution_kernel_size=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"num_layers must be a positive int, got num_layers={num_layers!r}")
        check_block_args(d_model, num_heads, intermediate_dim, dropout)
        self.num_layers = num_layers
        self.d_model = d_model
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.activation = activation
        self.norm_first = norm_first
        self.layer_norm_epsilon = layer_norm_epsilon
        self.window = mask_lib.validate_window(window)
        self.score = score
        self.distribution = distribution
        self.use_rotary = use_rotary
        self.activation_dropout = activation_dropout
        self.convolution_kernel_size = convolution_kernel_size
        self.blocks = [
            TransformerEncoderBlock(
                d_model, num_heads, intermediate_dim, dropout=dropout, activation=activation,
                norm_first=norm_first, layer_norm_epsilon=layer_norm_epsilon, window=self.window,
                score=score, distribution=distribution, use_rotary=use_rotary,
                activation_dropout=activation_dropout,
                convolution_kernel_size=convolution_kernel_size, dtype=self.dtype_policy, name=f"layer_{i}",
            )
            for i in range(num_layers)
        ]
        self._final_norm = (
            LayerNormalization(
                epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="final_norm")
            if norm_first else None
        )
        self.supports_masking = True

    def build(self, input_shape):
        check_input_width(self, input_shape)
        for block in self.blocks:
            block.build(input_shape)
        if self._final_norm is not None:
            self._final_norm.build(input_shape)
        self.built = True

    def call(self, inputs, padding_mask=None, attention_mask=None, attention_bias=None,
             training=None, return_attention_scores=False):
        if padding_mask is None:
            padding_mask = mask_lib.keras_mask(inputs)
        x = inputs
        all_scores = []
        for block in self.blocks:
            x = block(
                x, padding_mask=padding_mask, attention_mask=attention_mask,
                attention_bias=attention_bias, training=training,
                return_attention_scores=return_attention_scores,
            )
            if return_attention_scores:
                x, scores = x
                all_scores.append(scores)
        if self._final_norm is not None:
            x = self._final_norm(x)
        return (x, all_scores) if return_attention_scores else x

    def compute_mask(self, inputs, previous_mask=None):
        return previous_mask

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            num_layers=self.num_layers, d_model=self.d_model, num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim, dropout=self.dropout,
            activation=self.activation, norm_first=self.norm_first,
            layer_norm_epsilon=self.layer_norm_epsilon, window=self.window, score=self.score,
            distribution=self.distribution, use_rotary=self.use_rotary,
            activation_dropout=self.activation_dropout,
            convolution_kernel_size=self.convolution_kernel_size,
        )
        return config
