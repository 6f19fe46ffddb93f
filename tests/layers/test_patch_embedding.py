import numpy as np
import pytest
import tensorflow as tf

from tfformer.layers import PatchEmbedding, ShiftedPatchEmbedding


def _images(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def test_each_patch_is_a_linear_map_of_its_pixels():
    layer = PatchEmbedding(d_model=8, patch_size=4, use_class_token=False)
    images = _images(2, 8, 12, 3)
    out = np.asarray(layer(images))
    assert out.shape == (2, 6, 8)
    kernel, bias = layer._projection.get_weights()
    positions = np.asarray(layer.position_embeddings)
    for row in range(2):
        for col in range(3):
            patch = images[:, row * 4:(row + 1) * 4, col * 4:(col + 1) * 4]
            expected = np.einsum("bhwc,hwcd->bd", patch, kernel) + bias + positions[row * 3 + col]
            np.testing.assert_allclose(out[:, row * 3 + col], expected, atol=1e-4)


def test_class_token_is_first_and_identical_across_images():
    layer = PatchEmbedding(d_model=8, patch_size=4)
    out = np.asarray(layer(_images(3, 8, 8, 3)))
    assert out.shape == (3, 5, 8)
    np.testing.assert_array_equal(out[0, 0], out[2, 0])


def test_positions_are_resized_for_another_grid():
    layer = PatchEmbedding(d_model=8, patch_size=4, image_size=8)
    layer(_images(1, 8, 8, 3))
    same = np.asarray(layer._positions(2, 2))[0]
    np.testing.assert_allclose(same, np.asarray(layer.position_embeddings), atol=1e-6)
    larger = np.asarray(layer(_images(2, 16, 12, 3)))
    assert larger.shape == (2, 1 + 4 * 3, 8)
    resized = np.asarray(layer._positions(4, 3))[0].reshape(4, 3, 8)
    # Bilinear resizing keeps values inside the range of the trained grid.
    table = np.asarray(layer.position_embeddings)
    assert resized.min() >= table.min() - 1e-6 and resized.max() <= table.max() + 1e-6


def test_base_vit_b16_patch_embedding_parameter_count():
    layer = PatchEmbedding(d_model=768, patch_size=16)
    layer.build((None, 224, 224, 3))
    # 16*16*3*768 + 768 projection, 196*768 positions, class token and its position.
    assert layer.count_params() == 16 * 16 * 3 * 768 + 768 + 196 * 768 + 2 * 768


def test_bad_sizes_are_named():
    with pytest.raises(ValueError, match="patch_size=16"):
        PatchEmbedding(d_model=8, image_size=(30, 32))
    with pytest.raises(ValueError, match="not a multiple of patch_size=4"):
        PatchEmbedding(d_model=8, patch_size=4)(_images(1, 10, 8, 3))


@pytest.mark.parametrize("layer_class", [PatchEmbedding, ShiftedPatchEmbedding])
def test_an_empty_batch_gives_an_empty_result_eagerly_and_traced(layer_class):
    layer = layer_class(patch_size=16, d_model=8)
    assert tuple(layer(np.zeros((0, 32, 32, 3), "float32")).shape) == (0, 5, 8)
    traced = tf.function(layer, input_signature=[tf.TensorSpec([None, 32, 32, 3])])
    assert tuple(traced(np.zeros((0, 32, 32, 3), "float32")).shape) == (0, 5, 8)
