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


@pytest.mark.parametrize("width", [16, 7])
def test_halves_hold_the_same_sines_then_cosines(width):
    """"halves" is the interleaved encoding with its columns reordered: the sines (even
    columns) first, then the cosines (odd columns), with the extra column a sine for odd D."""
    x = np.zeros((1, 11, width), "float32")
    interleaved = np.asarray(SinusoidalPositionEncoding()(x))[0]
    halves = np.asarray(SinusoidalPositionEncoding(layout="halves")(x))[0]
    np.testing.assert_array_equal(halves, np.concatenate(
        [interleaved[:, 0::2], interleaved[:, 1::2]], axis=1))
    np.testing.assert_array_equal(halves[0, : (width + 1) // 2], 0.0)  # sin(0)
    np.testing.assert_array_equal(halves[0, (width + 1) // 2:], 1.0)  # cos(0)


def test_the_layout_round_trips_and_a_bad_one_is_named():
    layer = SinusoidalPositionEncoding(layout="halves")
    assert SinusoidalPositionEncoding.from_config(layer.get_config()).layout == "halves"
    with pytest.raises(ValueError, match="layout must be one of .* got layout='stacked'"):
        SinusoidalPositionEncoding(layout="stacked")
