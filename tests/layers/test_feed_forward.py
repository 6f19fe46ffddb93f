import numpy as np
import pytest

from tfformer.layers import FeedForward


def test_equals_two_dense_layers_with_relu():
    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype("float32")
    layer = FeedForward(6)
    out = layer(x)
    w1, b1, w2, b2 = layer.get_weights()
    np.testing.assert_allclose(out, np.maximum(x @ w1 + b1, 0) @ w2 + b2, atol=1e-5)


def test_bad_width_is_named():
    with pytest.raises(ValueError, match="intermediate_dim=0"):
        FeedForward(0)
