import numpy as np
import pytest

from tfformer.layers import RotaryEmbedding


def test_scores_depend_only_on_the_offset():
    rng = np.random.default_rng(0)
    q = np.broadcast_to(rng.normal(size=(1, 1, 16)), (1, 40, 16)).astype("float32")
    k = np.broadcast_to(rng.normal(size=(1, 1, 16)), (1, 40, 16)).astype("float32")
    layer = RotaryEmbedding()
    scores = np.einsum("bth,bsh->ts", layer(q), layer(k))  # (T, S)
    for offset in (-7, 0, 3, 11):
        diagonal = np.diagonal(scores, offset=offset)
        np.testing.assert_allclose(diagonal, diagonal[0], atol=1e-4)
    assert not np.allclose(np.diagonal(scores, 0)[0], np.diagonal(scores, 5)[0])


def test_rotation_preserves_norms_and_position_zero():
    x = np.random.default_rng(1).normal(size=(2, 6, 3, 8)).astype("float32")
    rotated = np.asarray(RotaryEmbedding()(x))
    np.testing.assert_allclose(np.linalg.norm(rotated, axis=-1), np.linalg.norm(x, axis=-1),
                               rtol=1e-5)
    np.testing.assert_allclose(rotated[:, 0], x[:, 0], atol=1e-6)


def test_start_index_continues_a_sequence():
    x = np.random.default_rng(2).normal(size=(1, 10, 8)).astype("float32")
    layer = RotaryEmbedding()
    np.testing.assert_allclose(layer(x[:, 6:], start_index=6), np.asarray(layer(x))[:, 6:],
                               atol=1e-5)


def test_odd_width_is_named():
    with pytest.raises(ValueError, match="even last dimension"):
        RotaryEmbedding()(np.zeros((1, 3, 5), "float32"))
