"""Speech recognition (truncated-attention Transformer + CTC) config and its presets."""

import dataclasses
import typing

from applications.common.config import ODD, above, at_least, check_config, fraction, one_of
from applications.common.quantization import MODES as QUANTIZATION_MODES


@dataclasses.dataclass(frozen=True)
class SpeechRecognitionConfig:
    # Data
    sample_rate: int = 16000  # the model's rate; other rates are resampled in the graph
    builtin_examples: int = 6000
    val_fraction: float = 0.1  # held out from training when there is no val split
    holdout_speaker: str | None = None  # FSDD: this speaker is the validation set
    max_seconds: float = 20.0  # longer training clips are dropped (and counted)
    connected_digits: int = 0  # > 0: join up to this many word recordings into one utterance
    connected_examples: int = 4000  # utterances built per epoch's worth when connected_digits > 0
    # Kaldi-style speed perturbation: each training recording is also added resampled by
    # these factors (1.1 = 10% faster and higher), e.g. [0.9, 1.1] triples the recordings.
    speed_perturbation: tuple[float, ...] = ()
    shuffle_buffer: int = 20000  # clips of prepared shards shuffled together
    max_bad_share: float = 0.001  # more clips that do not decode than this share stops the run
    # Front end (log-mel with tf.signal)
    frame_length_ms: float = 25.0  # analysis window of a log-mel frame
    frame_step_ms: float = 10.0  # hop between frames
    num_mel_bins: int = 80  # log-mel features per frame (M)
    # "global": one mean and variance per mel bin, from the training data, so that every frame
    # is normalised alone and the model can stream (live_stream.py); "utterance": each clip by
    # its own statistics, which are known only at its end (such a model cannot stream).
    feature_normalization: str = "global"
    normalization_sample: int = 10000  # clips the global statistics come from, at most,
    # evenly spread across the training data
    spec_augment: bool = True  # SpecAugment time and frequency masks while training
    frequency_masks: int = 2  # SpecAugment frequency masks per clip
    frequency_mask_width: int = 15  # bins
    time_masks: int = 2  # SpecAugment time masks per clip
    time_mask_width: int = 20  # frames
    # CTC output symbols: "characters" (any transcript) or "words" (a closed word list,
    # such as digit names: one symbol per word, so a word can't be misspelled)
    output_units: str = "characters"
    # Model
    num_layers: int = 12
    d_model: int = 256
    num_heads: int = 4
    intermediate_dim: int = 1024
    dropout: float = 0.1
    window_left: int | None = 16  # subsampled frames each frame may look back; None = full
    window_right: int | None = 4  # subsampled frames each frame may look ahead; None = full
    position: str = "rotary"  # or "relative" (T5 buckets); relative either way, for streaming
    subsampling_filters: int = 32  # channels of the 4x convolutional subsampling
    convolution_kernel_size: int | None = None  # odd: a Conformer convolution module per layer
    # Training
    batch_size: int = 32
    epochs: int = 30
    steps_per_epoch: int | None = None
    learning_rate: float = 1e-3
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    # CTC needs it early on. Keras clips each replica's gradient before the
    # all-reduce, so with several replicas a clipped step differs from one device's.
    gradient_clip_norm: float | None = 5.0
    seed: int = 0
    # Which weights are evaluated and exported: "best" (the epoch with the best validation
    # score, as Keras' restore_best_weights) or "last" (those training ended with).
    export_weights: str = "best"
    # Post-training weight quantization before evaluation and export: "none", "int8", "int4".
    quantize: str = "none"
    # Decoding
    beam_size: int = 1  # 1 = greedy CTC decoding
    # Closed vocabularies (digits, commands): of the beam's best paths, serve the most likely
    # whose words all occur in the training transcripts. Needs beam_size > 1.
    lexicon_decoding: bool = False
    silence_threshold: float = 1e-4  # peak amplitude below which a clip is silent (empty transcript)
    # Subsampled frames per serving chunk; each chunk also computes layers x window frames of
    # context, so longer chunks waste less. Clips up to one chunk run whole.
    chunk_frames: int = 128

    LIMITS: typing.ClassVar = {
        "export_weights": one_of("best", "last"), "quantize": one_of(*QUANTIZATION_MODES),
        "sample_rate": at_least(1000), "builtin_examples": at_least(10),
        "val_fraction": fraction(), "max_seconds": above(0), "connected_digits": at_least(0),
        "connected_examples": at_least(1), "speed_perturbation": above(0),
        "frame_length_ms": above(0), "frame_step_ms": above(0), "num_mel_bins": at_least(1),
        "feature_normalization": one_of("utterance", "global"),
        "normalization_sample": at_least(1), "frequency_masks": at_least(0),
        "frequency_mask_width": at_least(0), "time_masks": at_least(0),
        "time_mask_width": at_least(0), "output_units": one_of("characters", "words"),
        "num_layers": at_least(1), "d_model": at_least(1), "num_heads": at_least(1),
        "intermediate_dim": at_least(1), "dropout": fraction(), "window_left": at_least(0),
        "window_right": at_least(0), "position": one_of("rotary", "relative"),
        "subsampling_filters": at_least(1), "convolution_kernel_size": [at_least(1), ODD],
        "batch_size": at_least(1), "epochs": at_least(1), "steps_per_epoch": at_least(1),
        "shuffle_buffer": at_least(1), "max_bad_share": fraction(),
        "learning_rate": above(0), "warmup_fraction": fraction(high_included=True),
        "weight_decay": at_least(0), "gradient_clip_norm": above(0), "beam_size": at_least(1),
        "silence_threshold": at_least(0), "chunk_frames": at_least(1),
    }

    RULES: typing.ClassVar = [
        (lambda c: not c.lexicon_decoding or c.beam_size > 1,
         "lexicon decoding picks among the beam's best paths: it needs beam_size > 1, got "
         "beam_size={config.beam_size}"),
    ]

    def __post_init__(self):
        check_config(self)


PRESETS = {
    "tiny": dict(sample_rate=8000, builtin_examples=3000, num_mel_bins=40, num_layers=3,
                 d_model=96, num_heads=4, intermediate_dim=192, window_left=8, window_right=2,
                 batch_size=32, epochs=5, learning_rate=2e-3, frequency_mask_width=6,
                 time_mask_width=10),
    "small": dict(sample_rate=8000, num_mel_bins=64, num_layers=6, d_model=144, num_heads=4,
                  intermediate_dim=576, window_left=16, window_right=4,
                  batch_size=32, epochs=40, learning_rate=1.5e-3),
}
# Live streaming waits for layers x window_right + 1 subsampled frames of look-ahead (40 ms
# each): 1.0 s for `small`, 280 ms for this variant (FSDD: 0.28% connected-digit WER against
# 0.14%; benchmarks/README.md).
PRESETS["small_low_latency"] = {**PRESETS["small"], "window_right": 1}
