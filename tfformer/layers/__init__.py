"""tfformer's Keras layers, one public layer per module."""

from tfformer.layers.attention_scores import AttentionScore, register_score
from tfformer.layers.conformer_convolution import ConformerConvolution
from tfformer.layers.conv_subsampling import ConvSubsampling
from tfformer.layers.dropout import Dropout
from tfformer.layers.feed_forward import FeedForward
from tfformer.layers.flat_einsum_dense import FlatEinsumDense
from tfformer.layers.layer_normalization import LayerNormalization
from tfformer.layers.linear_attention import LinearAttention
from tfformer.layers.log_mel_spectrogram import LogMelSpectrogram
from tfformer.layers.multi_head_attention import MultiHeadAttention
from tfformer.layers.patch_embedding import PatchEmbedding
from tfformer.layers.position_embedding import PositionEmbedding
from tfformer.layers.relative_position_bias import RelativePositionBias
from tfformer.layers.rotary_embedding import RotaryEmbedding
from tfformer.layers.shifted_patch_embedding import ShiftedPatchEmbedding
from tfformer.layers.sinusoidal_position_encoding import SinusoidalPositionEncoding
from tfformer.layers.spec_augment import SpecAugment
from tfformer.layers.token_and_position_embedding import TokenAndPositionEmbedding
from tfformer.layers.transformer_decoder import TransformerDecoder
from tfformer.layers.transformer_decoder_block import TransformerDecoderBlock
from tfformer.layers.transformer_encoder import TransformerEncoder
from tfformer.layers.transformer_encoder_block import TransformerEncoderBlock

__all__ = [
    "AttentionScore",
    "ConformerConvolution",
    "ConvSubsampling",
    "Dropout",
    "FeedForward",
    "FlatEinsumDense",
    "LayerNormalization",
    "LinearAttention",
    "LogMelSpectrogram",
    "MultiHeadAttention",
    "PatchEmbedding",
    "PositionEmbedding",
    "RelativePositionBias",
    "RotaryEmbedding",
    "ShiftedPatchEmbedding",
    "SinusoidalPositionEncoding",
    "SpecAugment",
    "TokenAndPositionEmbedding",
    "TransformerDecoder",
    "TransformerDecoderBlock",
    "TransformerEncoder",
    "TransformerEncoderBlock",
    "register_score",
]
