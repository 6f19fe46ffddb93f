import keras

from tfformer import masks as mask_lib
from tfformer.layers.block_arguments import (
    check_activation_dropout,
    check_block_args,
    check_input_width,
)
from tfformer.layers.conformer_convolution import ConformerConvolution
from tfformer.layers.dropout import Dropout
from tfformer.layers.feed_forward import FeedForward
from tfformer.layers.layer_normalization import LayerNormalization
from tfformer.layers.multi_head_attention import MultiHeadAttention


@keras.saving.register_keras_serializable(package="tfformer")
class TransformerEncoderBlock(keras.layers.Layer):
    """One encoder layer: self-attention and feed-forward, each with a residual.

    Post-LN as in Vaswani et al. (x = LN(x + f(x))) by default; pre-LN
    (x = x + f(LN(x))) with `norm_first=True`.

    Args:
        d_model: int, D.
        num_heads: int, N; D must be divisible by N (heads of width D/N).
        intermediate_dim: int, F, the feed-forward width.
        dropout: float, default 0.1, on sublayer outputs and attention weights.
        activation_dropout: float or None (default): dropout inside the
            feed-forward, after the activation; None = `dropout`. 0 matches
            BERT and KerasHub and saves the (B, T, F) dropout mask, about a
            sixth of a small model's training step on CPU.
        convolution_kernel_size: int (odd) or None (default). When set, a
            Conformer-style `ConformerConvolution` sublayer with its own
            residual and norm follows the self-attention; each output then
            also depends on (kernel_size - 1) / 2 frames each side.
        activation: feed-forward activation, default "relu".
        norm_first: bool, default False (post-LN).
        layer_norm_epsilon: float, default 1e-6.
        window: `(left, right)` or None: truncated self-attention.
        score, distribution, use_rotary: passed to `MultiHeadAttention`.

    Call arguments:
        inputs: (B, T, D).
        padding_mask: (B, T) bool, True for real positions; defaults to the
            inputs' Keras mask.
        attention_mask: (B, T, T) bool, ANDed with padding and window.
        attention_bias: (B|1, N|1, T, T), e.g. from `RelativePositionBias`.
        training: bool.
        return_attention_scores: bool.

    Returns:
        (B, T, D) carrying the inputs' Keras mask, or
        `(outputs, scores (B, N, T, T))` with `return_attention_scores`.

    Example:

    >>> import numpy as np
    >>> block = TransformerEncoderBlock(d_model=16, num_heads=4, intermediate_dim=32)
    >>> tuple(block(np.zeros((2, 5, 16), "float32")).shape)
    (2, 5, 16)
    """

    def __init__(
        self,
        d_model,
        num_heads,
        intermediate_dim,
        dropout=0.1,
        activation="relu",
        norm_first=False,
        layer_norm_epsilon=1e-6,
        window=None,
        score="scaled_dot",
        distribution="softmax",
        use_rotary=False,
        activation_dropout=None,
        convolution_kernel_size=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_block_args(d_model, num_heads, intermediate_dim, dropout)
        check_activation_dropout(activation_dropout)
        self.activation_dropout = activation_dropout
        self.convolution_kernel_size = convolution_kernel_size
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
        policy = self.dtype_policy
        self._attention = MultiHeadAttention(
            num_heads, d_model // num_heads, dropout=dropout, window=self.window, score=score,
            distribution=distribution, use_rotary=use_rotary, dtype=policy, name="self_attention",
        )
        self._attention_norm = LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=policy, name="self_attention_norm")
        self._attention_dropout = Dropout(dropout, dtype=policy)
        self._convolution, self._convolution_norm = None, None
        if convolution_kernel_size is not None:
            self._convolution = ConformerConvolution(
                convolution_kernel_size, dropout=dropout, layer_norm_epsilon=layer_norm_epsilon,
                dtype=policy, name="convolution")
            self._convolution_norm = LayerNormalization(
                epsilon=layer_norm_epsilon, dtype=policy, name="convolution_norm")
        self._feed_forward = FeedForward(
            intermediate_dim, activation,
            dropout=dropout if activation_dropout is None else activation_dropout,
            dtype=policy, name="feed_forward")
        self._feed_forward_norm = LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=policy, name="feed_forward_norm")
        self._feed_forward_dropout = Dropout(dropout, dtype=policy)
        self.supports_masking = True

    def build(self, input_shape):
        check_input_width(self, input_shape)
        self._attention.build(input_shape, input_shape)
        self._attention_norm.build(input_shape)
        if self._convolution is not None:
            self._convolution.build(input_shape)
            self._convolution_norm.build(input_shape)
        self._feed_forward.build(input_shape)
        self._feed_forward_norm.build(input_shape)
        self.built = True

    def call(self, inputs, padding_mask=None, attention_mask=None, attention_bias=None,
             training=None, return_attention_scores=False):
        if padding_mask is None:
            padding_mask = mask_lib.keras_mask(inputs)
        x = inputs
        residual = x
        if self.norm_first:
            x = self._attention_norm(x)
        # Without scores, windowed attention can run block by block (linear in T).
        attended = self._attention(
            x, x, query_mask=padding_mask, value_mask=padding_mask,
            attention_mask=attention_mask, attention_bias=attention_bias,
            return_attention_scores=return_attention_scores, training=training,
        )
        x, scores = attended if return_attention_scores else (attended, None)
        x = residual + self._attention_dropout(x, training=training)
        if not self.norm_first:
            x = self._attention_norm(x)
        if self._convolution is not None:
            x = self._residual(x, self._convolution, self._convolution_norm, padding_mask,
                               training)
        residual = x
        if self.norm_first:
            x = self._feed_forward_norm(x)
        x = self._feed_forward(x, training=training)
        x = residual + self._feed_forward_dropout(x, training=training)
        if not self.norm_first:
            x = self._feed_forward_norm(x)
        if return_attention_scores:
            return x, scores
        return x

    def _residual(self, x, sublayer, norm, padding_mask, training):
        if self.norm_first:
            return x + sublayer(norm(x), padding_mask=padding_mask, training=training)
        return norm(x + sublayer(x, padding_mask=padding_mask, training=training))

    def compute_mask(self, inputs, previous_mask=None):
        return previous_mask

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            d_model=self.d_model, num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim, dropout=self.dropout,
            activation=self.activation, norm_first=self.norm_first,
            layer_norm_epsilon=self.layer_norm_epsilon, window=self.window, score=self.score,
            distribution=self.distribution, use_rotary=self.use_rotary,
            activation_dropout=self.activation_dropout,
            convolution_kernel_size=self.convolution_kernel_size,
        )
        return config
