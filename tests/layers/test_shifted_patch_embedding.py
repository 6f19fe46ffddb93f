import numpy as np
import pytest

from tfformer.layers import PatchEmbedding, ShiftedPatchEmbedding


def _images(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _shifted(images, rows, columns):
    """The image moved by (rows, columns) pixels, zeros where nothing moved in."""
    moved = np.zeros_like(images)
    height, width = images.shape[1:3]
    src_rows = slice(max(0, -rows), height - max(0, rows))
    dst_rows = slice(max(0, rows), height - max(0, -rows))
    src_cols = slice(max(0, -columns), width - max(0, columns))
    dst_cols = slice(max(0, columns), width - max(0, -columns))
    moved[:, dst_rows, dst_cols] = images[:, src_rows, src_cols]
    return moved


def test_each_token_projects_its_patch_and_the_half_patch_diagonal_shifts():
    layer = ShiftedPatchEmbedding(d_model=8, patch_size=4, use_class_token=False)
    images = _images(2, 8, 12, 3)
    out = np.asarray(layer(images))
    assert out.shape == (2, 6, 8)
    stack = np.concatenate(
        [images] + [_shifted(images, 2 * r, 2 * c) for r, c in layer.DIRECTIONS], axis=-1)
    gamma, beta = layer._patch_norm.get_weights()
    kernel, bias = layer._projection.get_weights()
    positions = np.asarray(layer.position_embeddings)
    for row in range(2):
        for col in range(3):
            patch = stack[:, row * 4:(row + 1) * 4, col * 4:(col + 1) * 4].reshape(2, -1)
            normed = (patch - patch.mean(-1, keepdims=True)) / np.sqrt(
                patch.var(-1, keepdims=True) + 1e-6) * gamma + beta
            expected = normed @ kernel + bias + positions[row * 3 + col]
            np.testing.assert_allclose(out[:, row * 3 + col], expected, atol=1e-4)


def test_a_token_sees_the_pixels_just_outside_its_patch():
    layer = ShiftedPatchEmbedding(d_model=8, patch_size=4, use_class_token=False)
    plain = PatchEmbedding(d_model=8, patch_size=4, use_class_token=False)
    images = _images(1, 8, 8, 3)
    changed = images.copy()
    changed[:, 4, 4] += 5.0  # the top-left pixel of patch (1, 1): inside patch 3 only
    for embed, neighbours_see_it in ((plain, False), (layer, True)):
        difference = np.abs(np.asarray(embed(changed)) - np.asarray(embed(images))).sum(-1)[0]
        assert difference[3] > 0
        assert (difference[0] > 0) == neighbours_see_it  # patch (0, 0), diagonally up-left


def test_positions_and_class_token_follow_patch_embedding():
    layer = ShiftedPatchEmbedding(d_model=8, patch_size=4, image_size=8)
    assert tuple(layer(_images(2, 8, 8, 3)).shape) == (2, 5, 8)
    assert tuple(layer(_images(2, 16, 12, 3)).shape) == (2, 13, 8)  # resized position grid


def test_bad_sizes_are_named():
    with pytest.raises(ValueError, match="patch_size must be at least 2"):
        ShiftedPatchEmbedding(d_model=8, patch_size=1)
    with pytest.raises(ValueError, match="not a multiple of patch_size=4"):
        ShiftedPatchEmbedding(d_model=8, patch_size=4)(_images(1, 10, 8, 3))
