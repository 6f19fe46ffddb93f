import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfformer")
class LogMelSpectrogram(keras.layers.Layer):
    """Log-mel features computed in the graph with `tf.signal`.

    Runs in `tf.data`, in the model and in a serving signature alike. Uses
    TensorFlow ops directly (tf.signal has no Keras-ops equivalent), so it
    needs the TensorFlow backend.

    Args:
        sample_rate: int, default 16000.
        frame_length_ms: float, default 25.
        frame_step_ms: float, default 10.
        fft_length: int, default the next power of two >= the frame length.
        num_mel_bins: int, default 80, M.
        lower_edge_hertz: float, default 20.
        upper_edge_hertz: float, default sample_rate / 2.
        log_offset: float, default 1e-6, added before the log.

    Call arguments:
        waveforms: (B, samples) float.
        mask: (B, samples) bool, True for real samples; defaults to the
            input's Keras mask.

    Returns:
        (B, F, M) in the compute dtype (computed in float32) with F = 1 + (samples - frame) // step; carries a
        frame mask (B, F) as its Keras mask when a sample mask was given: a
        frame is valid when all its samples are.

    Example:

    >>> import numpy as np
    >>> tuple(LogMelSpectrogram()(np.zeros((2, 16000), "float32")).shape)
    (2, 98, 80)
    """

    def __init__(self, sample_rate=16000, frame_length_ms=25.0, frame_step_ms=10.0,
                 fft_length=None, num_mel_bins=80, lower_edge_hertz=20.0,
                 upper_edge_hertz=None, log_offset=1e-6, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive int, got sample_rate={sample_rate!r}")
        if frame_length_ms <= 0 or frame_step_ms <= 0:
            raise ValueError(
                f"frame_length_ms={frame_length_ms} and frame_step_ms={frame_step_ms} must be positive"
            )
        upper = upper_edge_hertz or sample_rate / 2
        if not 0 <= lower_edge_hertz < upper <= sample_rate / 2:
            raise ValueError(
                f"Need 0 <= lower_edge_hertz={lower_edge_hertz} < upper_edge_hertz={upper} "
                f"<= sample_rate/2={sample_rate / 2}"
            )
        self.sample_rate = sample_rate
        self.frame_length_ms = frame_length_ms
        self.frame_step_ms = frame_step_ms
        self.fft_length = fft_length
        self.num_mel_bins = num_mel_bins
        self.lower_edge_hertz = lower_edge_hertz
        self.upper_edge_hertz = upper_edge_hertz
        self.log_offset = log_offset
        self.frame_length = int(round(sample_rate * frame_length_ms / 1000))
        self.frame_step = int(round(sample_rate * frame_step_ms / 1000))
        self._fft_length = fft_length or 1 << (self.frame_length - 1).bit_length()
        self._mel_matrix = tf.signal.linear_to_mel_weight_matrix(
            num_mel_bins, self._fft_length // 2 + 1, sample_rate, lower_edge_hertz, upper
        )  # (fft/2 + 1, M)
        self.supports_masking = True
        self.built = True

    def call(self, waveforms, mask=None):
        waveforms = tf.cast(waveforms, tf.float32)
        if mask is not None:
            waveforms = waveforms * tf.cast(mask, tf.float32)
        stft = tf.signal.stft(
            waveforms, self.frame_length, self.frame_step, self._fft_length, pad_end=False
        )  # (B, F, fft/2 + 1)
        power = tf.math.square(tf.abs(stft))
        mel = tf.tensordot(power, self._mel_matrix, 1)  # (B, F, M)
        mel.set_shape(power.shape[:-1].concatenate([self.num_mel_bins]))
        return tf.cast(tf.math.log(mel + self.log_offset), self.compute_dtype)

    def frame_mask(self, sample_mask):
        """(B, F) frame mask from a (B, samples) prefix sample mask: a frame
        is valid when its last sample is."""
        return keras.ops.cast(sample_mask, "bool")[:, self.frame_length - 1::self.frame_step]

    def compute_mask(self, waveforms, mask=None):
        return None if mask is None else self.frame_mask(mask)

    def compute_output_shape(self, input_shape):
        samples = input_shape[1]
        frames = None if samples is None else max(1 + (samples - self.frame_length) // self.frame_step, 0)
        return (input_shape[0], frames, self.num_mel_bins)

    def get_config(self):
        config = super().get_config()
        config.update(
            sample_rate=self.sample_rate, frame_length_ms=self.frame_length_ms,
            frame_step_ms=self.frame_step_ms, fft_length=self.fft_length,
            num_mel_bins=self.num_mel_bins, lower_edge_hertz=self.lower_edge_hertz,
            upper_edge_hertz=self.upper_edge_hertz, log_offset=self.log_offset,
        )
        return config
