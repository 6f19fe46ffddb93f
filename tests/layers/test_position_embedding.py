import numpy as np
import pytest

from tfformer.layers import PositionEmbedding


def test_returns_table_rows_from_start_index():
    layer = PositionEmbedding(sequence_length=10)
    out = np.asarray(layer(np.zeros((2, 4, 6), "float32"), start_index=3))
    table = np.asarray(layer.position_embeddings)
    np.testing.assert_array_equal(out[0], table[3:7])
    np.testing.assert_array_equal(out[1], table[3:7])


def test_sequence_longer_than_the_table_is_refused():
    layer = PositionEmbedding(sequence_length=8)
    with pytest.raises(ValueError, match="longer than the learned position table"):
        layer(np.zeros((1, 9, 4), "float32"))
    with pytest.raises(ValueError, match="sequence_length=8"):
        layer(np.zeros((1, 3, 4), "float32"), start_index=6)


def test_bad_length_is_named():
    with pytest.raises(ValueError, match="sequence_length=0"):
        PositionEmbedding(sequence_length=0)
