import numpy as np
import pytest

from tfformer import masks


def test_causal_mask_is_lower_triangular_with_offset():
    np.testing.assert_array_equal(masks.causal_mask(3)[0], np.tril(np.ones((3, 3), bool)))
    # Two queries at absolute positions 2 and 3 over 5 keys.
    expected = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], bool)
    np.testing.assert_array_equal(masks.causal_mask(2, 5, query_offset=2)[0], expected)


def test_window_mask_keeps_only_the_band():
    mask = np.asarray(masks.window_mask(6, 6, left=2, right=1)[0])
    i, j = np.indices((6, 6))
    np.testing.assert_array_equal(mask, (j - i >= -2) & (j - i <= 1))
    unbounded_left = np.asarray(masks.window_mask(4, 4, left=None, right=0)[0])
    np.testing.assert_array_equal(unbounded_left, np.tril(np.ones((4, 4), bool)))


def test_padding_and_adjacency_combine_by_and():
    query = np.array([[1, 1, 0]])
    key = np.array([[1, 0, 1, 1]])
    padding = masks.padding_mask(query, key)
    assert tuple(padding.shape) == (1, 3, 4)
    np.testing.assert_array_equal(padding[0], np.outer([1, 1, 0], [1, 0, 1, 1]).astype(bool))
    adjacency = np.eye(3)
    combined = masks.combine_masks(masks.adjacency_mask(adjacency), masks.causal_mask(3), None)
    np.testing.assert_array_equal(combined[0], np.eye(3, dtype=bool))
    assert masks.combine_masks(None, None) is None


@pytest.mark.parametrize("window", [(-1, 2), (1, -3), (1,), "ab", (1.5, 2)])
def test_bad_windows_are_named(window):
    with pytest.raises(ValueError, match="window"):
        masks.validate_window(window)


def test_adjacency_rank_is_checked():
    with pytest.raises(ValueError, match="adjacency"):
        masks.adjacency_mask(np.ones((2, 2, 2, 2)))
