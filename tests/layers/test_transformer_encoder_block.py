import keras
import numpy as np
import pytest

from tfformer.layers import TransformerEncoderBlock

D = 16


def _x(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def test_padded_positions_do_not_change_real_ones():
    block = TransformerEncoderBlock(D, 4, 32, dropout=0.0)
    x = _x(2, 6, D)
    padding = np.array([[1, 1, 1, 1, 0, 0], [1] * 6], bool)
    changed = x.copy()
    changed[0, 4:] = 50.0
    before = np.asarray(block(x, padding_mask=padding))
    after = np.asarray(block(changed, padding_mask=padding))
    np.testing.assert_allclose(before[0, :4], after[0, :4], atol=1e-6)
    np.testing.assert_array_equal(before[1], after[1])


def test_keras_mask_path_equals_explicit_path():
    ids = np.array([[3, 4, 5, 0], [6, 7, 8, 9]])
    embedding = keras.layers.Embedding(10, D, mask_zero=True)
    block = TransformerEncoderBlock(D, 4, 32, dropout=0.0)
    implicit = block(embedding(ids))
    explicit = block(np.asarray(embedding(ids)), padding_mask=ids != 0)
    np.testing.assert_allclose(implicit, explicit, atol=1e-6)


def test_post_ln_normalises_outputs_and_pre_ln_keeps_the_residual_scale():
    x = _x(2, 5, D) * 10.0
    post = np.asarray(TransformerEncoderBlock(D, 4, 32, dropout=0.0)(x))
    np.testing.assert_allclose(post.mean(-1), 0.0, atol=1e-4)
    np.testing.assert_allclose(post.std(-1), 1.0, atol=1e-2)
    pre = np.asarray(TransformerEncoderBlock(D, 4, 32, dropout=0.0, norm_first=True)(x))
    assert pre.std(-1).mean() > 5.0  # the residual stream is not renormalised


def test_returns_attention_scores_that_respect_the_window():
    block = TransformerEncoderBlock(D, 2, 32, dropout=0.0, window=(1, 0))
    _, scores = block(_x(1, 5, D), return_attention_scores=True)
    scores = np.asarray(scores)
    assert scores.shape == (1, 2, 5, 5)
    i, j = np.indices((5, 5))
    assert np.all(scores[..., (j > i) | (j < i - 1)] == 0)
    np.testing.assert_allclose(scores.sum(-1), 1.0, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"d_model": 250, "num_heads": 8, "intermediate_dim": 32}, "d_model=250 is not divisible by num_heads=8"),
        ({"d_model": 16, "num_heads": 0, "intermediate_dim": 32}, "num_heads=0"),
        ({"d_model": 16, "num_heads": 2, "intermediate_dim": 32, "window": (-1, 2)}, "window"),
        ({"d_model": 16, "num_heads": 2, "intermediate_dim": 32, "activation_dropout": 1.0},
         "activation_dropout must be None or in"),
    ],
)
def test_bad_configuration_fails_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TransformerEncoderBlock(**kwargs)


def test_activation_dropout_is_the_feed_forward_dropout_alone():
    x = _x(2, 6, D)
    inner_only = TransformerEncoderBlock(D, 2, 32, dropout=0.0, activation_dropout=0.5)
    assert not np.allclose(inner_only(x, training=True), inner_only(x))
    outer_only = TransformerEncoderBlock(D, 2, 32, dropout=0.3, activation_dropout=0.0)
    ffn_only = outer_only._feed_forward
    ffn_input = _x(2, 6, D)
    np.testing.assert_array_equal(ffn_only(ffn_input, training=True), ffn_only(ffn_input))
    assert TransformerEncoderBlock(D, 2, 32, dropout=0.3)._feed_forward.dropout == 0.3


def test_wrong_width_is_named():
    with pytest.raises(ValueError, match="d_model=16"):
        TransformerEncoderBlock(16, 2, 32)(_x(1, 3, 8))
