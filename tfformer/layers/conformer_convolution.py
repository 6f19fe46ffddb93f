import keras
from keras import ops

from tfformer import masks as mask_lib
from tfformer.layers.dropout import Dropout
from tfformer.layers.layer_normalization import LayerNormalization


@keras.saving.register_keras_serializable(package="tfformer")
class ConformerConvolution(keras.layers.Layer):
    """Conformer's convolution module (Gulati et al., 2020), without the residual.

    Pointwise Dense(2D) -> GLU -> depthwise Conv1D(kernel_size, "same") ->
    LayerNormalization -> swish -> pointwise Dense(D) -> dropout. Layer
    normalisation replaces the paper's batch normalisation so that an
    utterance's output never depends on the rest of its batch (training,
    serving and chunked inference agree). Padded frames are zeroed before the
    depthwise convolution, so padding never leaks into real frames: each
    output frame sees (kernel_size - 1) / 2 real frames each side at most.

    Args:
        kernel_size: int, odd, default 15.
        dropout: float, default 0.
        layer_norm_epsilon: float, default 1e-6.

    Call arguments:
        inputs: (B, T, D).
        padding_mask: (B, T) bool, True for real frames; defaults to the
            inputs' Keras mask.
        training: bool.

    Returns:
        (B, T, D); padded frames are 0.

    Example:

    >>> import numpy as np
    >>> conv = ConformerConvolution(kernel_size=3)
    >>> x = np.ones((1, 4, 8), "float32")
    >>> out = conv(x, padding_mask=np.array([[True, True, True, False]]))
    >>> tuple(out.shape), float(np.abs(out[0, 3]).max())
    ((1, 4, 8), 0.0)
    """

    def __init__(self, kernel_size=15, dropout=0.0, layer_norm_epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(kernel_size, int) or kernel_size <= 0 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got dropout={dropout!r}")
        self.kernel_size = kernel_size
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.supports_masking = True

    @property
    def context(self):
        """Frames each side that one output frame depends on."""
        return (self.kernel_size - 1) // 2

    def build(self, input_shape):
        width = input_shape[-1]
        policy = self.dtype_policy
        self._expand = keras.layers.Dense(2 * width, dtype=policy, name="pointwise_in")
        self._expand.build(input_shape)
        self._depthwise = keras.layers.DepthwiseConv1D(
            self.kernel_size, padding="same", dtype=policy, name="depthwise")
        self._depthwise.build(input_shape)
        self._norm = LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=policy, name="norm")
        self._norm.build(input_shape)
        self._project = keras.layers.Dense(width, dtype=policy, name="pointwise_out")
        self._project.build(input_shape)
        self._dropout = Dropout(self.dropout, dtype=policy)
        self.built = True

    def call(self, inputs, padding_mask=None, training=None):
        if padding_mask is None:
            padding_mask = mask_lib.keras_mask(inputs)
        keep = None if padding_mask is None else ops.cast(padding_mask, inputs.dtype)[..., None]
        value, gate = ops.split(self._expand(inputs), 2, axis=-1)
        x = value * ops.sigmoid(gate)  # GLU
        if keep is not None:
            x = x * keep
        x = ops.silu(self._norm(self._depthwise(x)))
        x = self._dropout(self._project(x), training=training)
        return x if keep is None else x * keep

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(kernel_size=self.kernel_size, dropout=self.dropout,
                      layer_norm_epsilon=self.layer_norm_epsilon)
        return config
