import numpy as np
import pytest

from tfformer.attention_rollout import attention_rollout


def _random_weights(seed, batch=2, heads=3, tokens=5):
    logits = np.random.default_rng(seed).normal(size=(batch, heads, tokens, tokens))
    weights = np.exp(logits)
    return (weights / weights.sum(-1, keepdims=True)).astype("float32")


def test_rows_are_distributions_and_match_a_direct_computation():
    layers = [_random_weights(seed) for seed in range(3)]
    rollout = np.asarray(attention_rollout(layers, residual=0.3))
    np.testing.assert_allclose(rollout.sum(-1), 1.0, atol=1e-5)
    expected = np.stack([np.eye(5)] * 2)
    for weights in layers:
        mixed = 0.7 * weights.mean(1) + 0.3 * np.eye(5)
        expected = mixed @ expected
    np.testing.assert_allclose(rollout, expected, atol=1e-5)
    stacked = np.stack(layers, axis=1)  # (B, L, N, T, T)
    np.testing.assert_allclose(attention_rollout(stacked, residual=0.3), rollout, atol=1e-6)


def test_attention_to_self_only_rolls_out_to_the_identity():
    eye = np.broadcast_to(np.eye(4, dtype="float32"), (1, 2, 4, 4))
    np.testing.assert_allclose(attention_rollout([eye, eye, eye]), np.eye(4)[None], atol=1e-6)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="at least one layer"):
        attention_rollout([])
    with pytest.raises(ValueError, match="residual=1.5"):
        attention_rollout([_random_weights(0)], residual=1.5)
