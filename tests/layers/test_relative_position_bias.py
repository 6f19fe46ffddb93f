import math

import numpy as np
import pytest

from tfformer.layers import RelativePositionBias


def reference_bucket(relative, bidirectional, num_buckets, max_distance):
    """T5's bucketing written out for one scalar, as in the paper's code."""
    bucket = 0
    n = -relative
    if bidirectional:
        num_buckets //= 2
        if n < 0:
            bucket += num_buckets
        n = abs(n)
    else:
        n = max(n, 0)
    max_exact = num_buckets // 2
    if n < max_exact:
        return bucket + n
    large = max_exact + int(
        math.log(n / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    )
    return bucket + min(large, num_buckets - 1)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_buckets_match_t5(bidirectional):
    layer = RelativePositionBias(num_heads=2, num_buckets=32, max_distance=128,
                                 bidirectional=bidirectional)
    relative = np.arange(-300, 300, dtype="int32")
    ours = np.asarray(layer.bucket(relative))
    expected = [reference_bucket(int(r), bidirectional, 32, 128) for r in relative]
    np.testing.assert_array_equal(ours, expected)


def test_bias_depends_only_on_the_offset_and_is_shared_by_causal_future():
    layer = RelativePositionBias(num_heads=3, bidirectional=False, initializer="random_normal")
    bias = np.asarray(layer(np.zeros((1, 10, 4)), np.zeros((1, 12, 4))))
    assert bias.shape == (1, 3, 10, 12)
    for i in range(9):
        np.testing.assert_array_equal(bias[0, :, i, :11], bias[0, :, i + 1, 1:12])
    # All keys to the right fall into bucket 0 in the causal form.
    np.testing.assert_array_equal(bias[0, :, 0, 1], bias[0, :, 0, 5])


def test_query_offset_matches_the_full_bias_rows():
    layer = RelativePositionBias(num_heads=2, initializer="random_normal")
    full = np.asarray(layer(np.zeros((1, 8, 4))))
    row = np.asarray(layer(np.zeros((1, 1, 4)), np.zeros((1, 8, 4)), query_offset=5))
    np.testing.assert_array_equal(row[0, :, 0], full[0, :, 5])


def test_too_few_buckets_are_named():
    with pytest.raises(ValueError, match="num_buckets=2"):
        RelativePositionBias(num_heads=2, num_buckets=2)
