import numpy as np
import pytest

from tfformer.layers import SinusoidalPositionEncoding


@pytest.mark.parametrize("width, base", [(16, 10000.0), (7, 100.0)])
def test_values_match_the_formula(width, base):
    x = np.zeros((2, 9, width), "float32")
    encoding = np.asarray(SinusoidalPositionEncoding(base=base)(x))
    assert encoding.shape == x.shape
    for pos in range(9):
        for i in range(width):
            angle = pos / base ** ((i - i % 2) / width)
            expected = np.sin(angle) if i % 2 == 0 else np.cos(angle)
            assert abs(encoding[1, pos, i] - expected) < 1e-5, (pos, i)


def test_start_index_continues_a_longer_sequence():
    layer = SinusoidalPositionEncoding()
    long = np.asarray(layer(np.zeros((1, 20, 8), "float32")))
    tail = np.asarray(layer(np.zeros((1, 5, 8), "float32"), start_index=15))
    np.testing.assert_allclose(tail, long[:, 15:], atol=1e-5)


def test_bad_base_is_named():
    with pytest.raises(ValueError, match="base=0"):
        SinusoidalPositionEncoding(base=0)
