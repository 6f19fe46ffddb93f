"""One harness case per public layer: constructor arguments and inputs."""

import numpy as np

from tests.layers.harness import LayerCase
from tfformer import layers

B, T, S, D = 4, 6, 5, 16
_rng = np.random.default_rng(0)


def _floats(*shape):
    return np.random.default_rng(sum(shape)).normal(size=shape).astype("float32")


def _ids(*shape, vocabulary=20):
    ids = np.random.default_rng(7).integers(1, vocabulary, size=shape).astype("int32")
    # Padding in both halves of the batch, equally: a masked mean loss is
    # then normalised alike on one device and per replica of two.
    ids[0, -2:] = 0
    ids[-1, -2:] = 0
    return ids


def _seq():
    return {"x": _floats(B, T, D)}


def _query_value():
    return {"query": _floats(B, T, D), "value": _floats(B, S, D)}


def _add(layer, inputs):
    x = inputs["x"]
    return x + layer(x)


CASES = [
    LayerCase("sinusoidal", layers.SinusoidalPositionEncoding, {}, _seq, _add),
    LayerCase("position_embedding", layers.PositionEmbedding, {"sequence_length": 8}, _seq, _add),
    LayerCase(
        "token_and_position",
        layers.TokenAndPositionEmbedding,
        {"vocabulary_size": 20, "d_model": D, "sequence_length": 8, "mask_zero": True},
        lambda: {"ids": _ids(B, T)},
    ),
    LayerCase(
        "token_and_sinusoidal",
        layers.TokenAndPositionEmbedding,
        {"vocabulary_size": 20, "d_model": D, "position": "sinusoidal"},
        lambda: {"ids": _ids(B, T)},
    ),
    LayerCase(
        "relative_position_bias",
        layers.RelativePositionBias,
        {"num_heads": 2, "num_buckets": 8, "max_distance": 16},
        _seq,
        lambda layer, inputs: inputs["x"][:, :, :T] + layer(inputs["x"])[:, 0],
    ),
    LayerCase(
        "rotary",
        layers.RotaryEmbedding,
        {},
        _seq,
    ),
    LayerCase("mha", layers.MultiHeadAttention, {"num_heads": 2, "key_dim": 8}, _query_value),
    LayerCase(
        "mha_window_general_sparsemax",
        layers.MultiHeadAttention,
        {"num_heads": 2, "key_dim": 8, "window": (1, 1), "score": "general",
         "distribution": "sparsemax", "use_rotary": True},
        _seq,
        lambda layer, inputs: layer(inputs["x"], inputs["x"]),
    ),
    LayerCase(
        "mha_additive_causal",
        layers.MultiHeadAttention,
        {"num_heads": 2, "key_dim": 8, "score": "additive", "head_disagreement": 0.1},
        _seq,
        lambda layer, inputs: layer(inputs["x"], inputs["x"], use_causal_mask=True),
    ),
    LayerCase(
        "linear_attention",
        layers.LinearAttention,
        {"num_heads": 2, "key_dim": 8},
        _seq,
        lambda layer, inputs: layer(inputs["x"], inputs["x"], use_causal_mask=True),
    ),
    LayerCase("feed_forward", layers.FeedForward, {"intermediate_dim": 32}, _seq),
    LayerCase("flat_einsum_dense", layers.FlatEinsumDense,
              {"equation": "abc,cde->abde", "output_shape": (T, 2, 8), "bias_axes": "de"},
              _seq),
    # rate 0: the one-device and two-replica steps draw different masks (test_dropout.py
    # checks the random path, under a strategy too).
    LayerCase("dropout", layers.Dropout, {"rate": 0.0, "seed": 1}, _seq, _add),
    LayerCase("layer_normalization", layers.LayerNormalization, {"epsilon": 1e-6}, _seq),
    LayerCase("conformer_convolution", layers.ConformerConvolution, {"kernel_size": 3}, _seq),
    LayerCase(
        "encoder_block",
        layers.TransformerEncoderBlock,
        {"d_model": D, "num_heads": 2, "intermediate_dim": 32, "dropout": 0.0, "window": (2, 1)},
        _seq,
    ),
    LayerCase(
        "conformer_encoder_block",
        layers.TransformerEncoderBlock,
        {"d_model": D, "num_heads": 2, "intermediate_dim": 32, "dropout": 0.0, "norm_first": True,
         "convolution_kernel_size": 3},
        _seq,
    ),
    LayerCase(
        "decoder_block",
        layers.TransformerDecoderBlock,
        {"d_model": D, "num_heads": 2, "intermediate_dim": 32, "dropout": 0.0,
         "norm_first": True},
        lambda: {"targets": _floats(B, T, D), "memory": _floats(B, S, D)},
    ),
    LayerCase(
        "encoder",
        layers.TransformerEncoder,
        {"num_layers": 2, "d_model": D, "num_heads": 2, "intermediate_dim": 32, "dropout": 0.0,
         "activation_dropout": 0.0},
        _seq,
    ),
    LayerCase(
        "decoder",
        layers.TransformerDecoder,
        {"num_layers": 2, "d_model": D, "num_heads": 2, "intermediate_dim": 32, "dropout": 0.0},
        lambda: {"targets": _floats(B, T, D), "memory": _floats(B, S, D)},
    ),
    LayerCase(
        "patch_embedding",
        layers.PatchEmbedding,
        {"d_model": D, "patch_size": 4},
        lambda: {"images": _floats(B, 8, 12, 3)},
    ),
    LayerCase(
        "shifted_patch_embedding",
        layers.ShiftedPatchEmbedding,
        {"d_model": D, "patch_size": 4},
        lambda: {"images": _floats(B, 8, 12, 3)},
    ),
    LayerCase(
        "conv_subsampling",
        layers.ConvSubsampling,
        {"d_model": D},
        lambda: {"features": _floats(B, 20, 12)},
    ),
    LayerCase(
        "log_mel_spectrogram",
        layers.LogMelSpectrogram,
        {"sample_rate": 8000, "num_mel_bins": 16},
        lambda: {"waveforms": _floats(B, 1600) * 0.1},
        tolerance=1e-4,
    ),
    LayerCase(
        "spec_augment",
        layers.SpecAugment,
        # No masks, so the layer is an identity in training too: random masks would differ
        # between one device and two replicas. tests/layers/test_spec_augment.py checks the
        # masks themselves under XLA, mixed_bfloat16 and a strategy.
        {"frequency_masks": 0, "time_masks": 0},
        lambda: {"features": _floats(B, 20, 12)},
    ),
]
