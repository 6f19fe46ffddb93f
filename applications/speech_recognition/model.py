"""The speech recognizer: log-mel frames -> 4x subsampling -> truncated-attention encoder -> CTC."""

import keras
import tensorflow as tf
from keras import ops

from applications.common.replica_metrics import global_mean
from tfformer import layers
from tfformer import masks as mask_lib

NORMALIZATIONS = ("utterance", "global")
POSITIONS = ("rotary", "relative")  # relative, so chunked inference is shift-invariant


def utterance_normalize(features, lengths, epsilon=1e-5):
    """Zero mean, unit variance per mel bin over each utterance's valid frames; padding -> 0."""
    mask = ops.cast(mask_lib.length_mask(lengths, ops.shape(features)[1]),
                    features.dtype)[:, :, None]  # (B, F, 1)
    count = ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1.0)
    mean = ops.sum(features * mask, axis=1, keepdims=True) / count  # (B, 1, M)
    variance = ops.sum(ops.square(features - mean) * mask, axis=1, keepdims=True) / count
    return (features - mean) * ops.rsqrt(variance + epsilon) * mask


@keras.saving.register_keras_serializable(package="tfformer_applications")
class SpeechRecognizer(keras.Model):
    """Truncated-attention Transformer encoder with a CTC head.

    Args:
        vocabulary_size: int, output symbols without the blank; the blank is
            the last class (as `tf.nn.ctc_greedy_decoder` expects).
        num_mel_bins: int, M.
        num_layers, d_model, num_heads, intermediate_dim, dropout: encoder shape.
        window: (left, right) in subsampled frames (40 ms at a 10 ms hop), or
            None for full attention.
        position: "rotary" or "relative" (T5 buckets).
        feature_normalization: "utterance" or "global" (a Keras
            Normalization layer; call `adapt_normalization` before training).
        spec_augment: dict of `SpecAugment` arguments, or None.
        subsampling_filters: int.
        convolution_kernel_size: odd int or None: a Conformer-style
            convolution module in every encoder layer.

    Call arguments:
        inputs: {"features": (B, F, M) log-mel, "feature_lengths": (B,) int}.

    Returns:
        logits (B, ceil(F/4), vocabulary_size + 1) float32; valid lengths
        from `logit_lengths(feature_lengths)`.
    """

    def __init__(self, vocabulary_size, num_mel_bins, num_layers=12, d_model=256, num_heads=4,
                 intermediate_dim=1024, dropout=0.1, window=(16, 4), position="rotary",
                 feature_normalization="utterance", spec_augment=None, subsampling_filters=32,
                 convolution_kernel_size=None, **kwargs):
        super().__init__(**kwargs)
        if position not in POSITIONS:
            raise ValueError(f"position must be one of {POSITIONS}, got position={position!r}")
        if feature_normalization not in NORMALIZATIONS:
            raise ValueError(f"feature_normalization must be one of {NORMALIZATIONS}, "
                             f"got feature_normalization={feature_normalization!r}")
        self.vocabulary_size = vocabulary_size
        self.num_mel_bins = num_mel_bins
        self.num_layers = num_layers
        self.d_model = d_model
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.window = None if window is None else tuple(window)
        self.position = position
        self.feature_normalization = feature_normalization
        self.spec_augment = spec_augment
        self.subsampling_filters = subsampling_filters
        self.convolution_kernel_size = convolution_kernel_size
        # float32 under any policy: features are normalised in float32 (`normalize`), and
        # Keras' `adapt` accumulates its statistics in float32.
        self.normalization = (keras.layers.Normalization(axis=-1, name="global_normalization",
                                                         dtype="float32")
                              if feature_normalization == "global" else None)
        self.augment = layers.SpecAugment(**spec_augment, name="spec_augment") if spec_augment else None
        self.subsampling = layers.ConvSubsampling(d_model, filters=subsampling_filters,
                                                  name="subsampling")
        self.relative_bias = (layers.RelativePositionBias(num_heads, name="relative_bias")
                              if position == "relative" else None)
        self.input_dropout = layers.Dropout(dropout)
        self.encoder = layers.TransformerEncoder(
            num_layers, d_model, num_heads, intermediate_dim, dropout=dropout, norm_first=True,
            window=self.window, use_rotary=position == "rotary", activation="gelu",
            convolution_kernel_size=convolution_kernel_size, name="encoder")
        self.head = keras.layers.Dense(vocabulary_size + 1, name="ctc_head")

    def build(self, input_shape=None):
        features = (None, None, self.num_mel_bins)
        if self.normalization is not None and not self.normalization.built:
            self.normalization.build(features)
        if self.augment is not None:
            self.augment.build(features)
        self.subsampling.build(features)
        hidden = (None, None, self.d_model)
        if self.relative_bias is not None:
            self.relative_bias.build(hidden)
        self.encoder.build(hidden)
        self.head.build(hidden)
        self.built = True

    def adapt_normalization(self, features_dataset):
        """Global mean and variance per mel bin from a dataset of (F, M) feature tensors."""
        if self.normalization is not None:
            self.normalization.adapt(features_dataset)

    @staticmethod
    def logit_lengths(feature_lengths):
        return layers.ConvSubsampling.output_lengths(ops.cast(feature_lengths, "int32"))

    def normalize(self, features, feature_lengths):
        features = ops.cast(features, "float32")
        if self.normalization is None:
            return utterance_normalize(features, ops.cast(feature_lengths, "int32"))
        mask = mask_lib.length_mask(feature_lengths, ops.shape(features)[1])  # (B, F)
        return self.normalization(features) * ops.cast(mask[:, :, None], "float32")

    def encode_normalized(self, features, frame_mask, training=None):
        """(B, F, M) normalised features and their (B, F) mask -> logits (B, F', V + 1)."""
        x = self.subsampling(features, mask=frame_mask)  # (B, F', D)
        padding_mask = self.subsampling.output_mask(frame_mask)  # (B, F')
        x = self.input_dropout(x, training=training)
        mask_lib.clear_keras_mask(x)  # the padding mask is passed explicitly
        bias = self.relative_bias(x) if self.relative_bias is not None else None
        x = self.encoder(x, padding_mask=padding_mask, attention_bias=bias, training=training)
        return ops.cast(self.head(x), "float32")

    def call(self, inputs, training=None):
        features, lengths = inputs["features"], ops.cast(inputs["feature_lengths"], "int32")
        frame_mask = mask_lib.length_mask(lengths, ops.shape(features)[1])  # (B, F)
        x = self.normalize(features, lengths)
        if self.augment is not None:
            x = self.augment(x, mask=frame_mask, training=training)
        return self.encode_normalized(ops.cast(x, self.compute_dtype), frame_mask,
                                      training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Mean CTC loss per utterance (`tf.nn.ctc_loss`, blank last) over the global
        batch, plus added losses."""
        losses = tf.nn.ctc_loss(
            labels=tf.cast(y["labels"], tf.int32), logits=y_pred,
            label_length=tf.cast(y["label_lengths"], tf.int32),
            logit_length=self.logit_lengths(x["feature_lengths"]),
            logits_time_major=False, blank_index=-1)  # (B,)
        # This replica's share of the global batch mean (Keras sums the replicas'
        # gradients), so training equals one device's.
        batch = tf.shape(losses)[0]
        loss = global_mean(tf.reduce_sum(losses), batch, batch)
        if self.losses:
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            loss += tf.add_n([tf.cast(extra, loss.dtype) for extra in self.losses]) / replicas
        return loss

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size, num_mel_bins=self.num_mel_bins,
            num_layers=self.num_layers, d_model=self.d_model, num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim, dropout=self.dropout, window=self.window,
            position=self.position, feature_normalization=self.feature_normalization,
            spec_augment=self.spec_augment, subsampling_filters=self.subsampling_filters,
            convolution_kernel_size=self.convolution_kernel_size)
        return config


def build_recognizer(config, vocabulary_size):
    window = (None if config.window_left is None or config.window_right is None
              else (config.window_left, config.window_right))
    spec_augment = dict(
        frequency_masks=config.frequency_masks, frequency_mask_width=config.frequency_mask_width,
        time_masks=config.time_masks, time_mask_width=config.time_mask_width,
        seed=config.seed) if config.spec_augment else None
    model = SpeechRecognizer(
        vocabulary_size, config.num_mel_bins, num_layers=config.num_layers,
        d_model=config.d_model, num_heads=config.num_heads,
        intermediate_dim=config.intermediate_dim, dropout=config.dropout, window=window,
        position=config.position, feature_normalization=config.feature_normalization,
        spec_augment=spec_augment, subsampling_filters=config.subsampling_filters,
        convolution_kernel_size=config.convolution_kernel_size, name="speech_recognizer")
    model.build()
    return model
