"""The Conformer convolution module: its reach is exactly (kernel_size - 1) / 2 frames each
side, padding never leaks into real frames, and bad arguments are named."""

import numpy as np
import pytest

from tfformer.layers import ConformerConvolution, TransformerEncoderBlock

D = 8


def _x(batch, frames, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, frames, D)).astype("float32")


def test_each_output_frame_sees_only_its_kernel_neighbourhood():
    conv = ConformerConvolution(kernel_size=5)
    x = _x(1, 12)
    base = np.asarray(conv(x))
    changed = x.copy()
    changed[0, 6] += 3.0
    moved = np.abs(np.asarray(conv(changed)) - base).max(-1)[0] > 0
    assert conv.context == 2
    np.testing.assert_array_equal(np.flatnonzero(moved), [4, 5, 6, 7, 8])


def test_padding_does_not_leak_into_real_frames():
    conv = ConformerConvolution(kernel_size=3)
    mask = np.array([[True] * 5 + [False] * 3])
    x = _x(1, 8)
    noisy = x.copy()
    noisy[0, 5:] = 100.0
    out, out_noisy = (np.asarray(conv(v, padding_mask=mask)) for v in (x, noisy))
    np.testing.assert_array_equal(out[0, :5], out_noisy[0, :5])
    assert np.all(out[0, 5:] == 0)
    np.testing.assert_allclose(out[0, :5], np.asarray(conv(x[:, :5]))[0], atol=1e-6)


def test_an_encoder_block_with_convolution_keeps_padding_out():
    block = TransformerEncoderBlock(D, 2, 16, dropout=0.0, norm_first=True,
                                    convolution_kernel_size=3)
    mask = np.array([[True] * 4 + [False] * 2])
    x = _x(1, 6)
    noisy = x.copy()
    noisy[0, 4:] = -50.0
    np.testing.assert_allclose(np.asarray(block(x, padding_mask=mask))[0, :4],
                               np.asarray(block(noisy, padding_mask=mask))[0, :4], atol=1e-5)
    assert "convolution" in [layer.name for layer in block._layers]


@pytest.mark.parametrize("kwargs, message", [
    ({"kernel_size": 4}, "kernel_size must be a positive odd int"),
    ({"kernel_size": 0}, "kernel_size must be a positive odd int"),
    ({"dropout": 1.5}, "dropout must be in"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ConformerConvolution(**kwargs)
