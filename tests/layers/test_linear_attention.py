import numpy as np
import pytest

from tfformer.layers import LinearAttention


def _phi(x):
    return np.where(x > 0, x + 1.0, np.exp(x))


def _reference(layer, query, value, mask, causal):
    """Katharopoulos et al.'s formula, written with explicit loops over positions."""
    wq, bq, wk, bk, wv, bv, wo, bo = layer.get_weights()
    q = _phi(np.einsum("btd,dnh->btnh", query, wq) + bq)
    k = _phi(np.einsum("bsd,dnh->bsnh", value, wk) + bk) * mask[:, :, None, None]
    v = np.einsum("bsd,dnh->bsnh", value, wv) + bv
    out = np.zeros(q.shape[:3] + (v.shape[-1],))
    for t in range(q.shape[1]):
        visible = slice(0, t + 1) if causal else slice(None)
        kv = np.einsum("bsnh,bsnv->bnhv", k[:, visible], v[:, visible])
        z = np.einsum("bnh,bsnh->bn", q[:, t], k[:, visible])
        out[:, t] = np.einsum("bnh,bnhv->bnv", q[:, t], kv) / z[..., None]
    return np.einsum("btnv,nvo->bto", out, wo) + bo


@pytest.mark.parametrize("causal", [False, True])
def test_matches_the_formula(causal):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 8)).astype("float32")
    mask = np.ones((2, 6), bool)
    if not causal:
        mask[1, 4:] = False
    layer = LinearAttention(num_heads=2, key_dim=4)
    out = layer(x, x, value_mask=mask, use_causal_mask=causal)
    np.testing.assert_allclose(out, _reference(layer, x, x, mask, causal), atol=1e-4)


def test_causal_form_ignores_the_future():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 8, 8)).astype("float32")
    changed = x.copy()
    changed[:, 5:] += 3.0
    layer = LinearAttention(num_heads=2, key_dim=4)
    before = np.asarray(layer(x, x, use_causal_mask=True))
    after = np.asarray(layer(changed, changed, use_causal_mask=True))
    np.testing.assert_array_equal(before[:, :5], after[:, :5])


def test_unsupported_options_are_named():
    with pytest.raises(ValueError, match="window"):
        LinearAttention(num_heads=2, key_dim=4, window=(1, 1))
    layer = LinearAttention(num_heads=2, key_dim=4)
    x = np.zeros((1, 3, 8), "float32")
    with pytest.raises(ValueError, match="attention_mask"):
        layer(x, x, attention_mask=np.ones((1, 3, 3), bool))
