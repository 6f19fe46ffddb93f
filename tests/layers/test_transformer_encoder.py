import numpy as np

from tfformer.layers import TransformerEncoder

D = 16


def test_stacked_windows_grow_the_receptive_field():
    layers, left, right = 3, 1, 0
    encoder = TransformerEncoder(layers, D, 2, 32, dropout=0.0, window=(left, right))
    x = np.random.default_rng(0).normal(size=(1, 12, D)).astype("float32")
    reference = np.asarray(encoder(x))
    changed = x.copy()
    changed[0, 4] += 1.0
    output = np.asarray(encoder(changed))
    for i in range(12):
        reached = 4 - layers * right <= i <= 4 + layers * left
        if reached:
            assert not np.allclose(output[0, i], reference[0, i]), i
        else:
            np.testing.assert_array_equal(output[0, i], reference[0, i])


def test_returns_one_score_tensor_per_layer_and_a_final_norm_when_pre_ln():
    encoder = TransformerEncoder(2, D, 4, 32, dropout=0.0, norm_first=True)
    x = np.random.default_rng(1).normal(size=(2, 5, D)).astype("float32") * 5
    out, scores = encoder(x, return_attention_scores=True)
    assert [tuple(s.shape) for s in scores] == [(2, 4, 5, 5)] * 2
    np.testing.assert_allclose(np.asarray(out).std(-1), 1.0, atol=1e-2)
