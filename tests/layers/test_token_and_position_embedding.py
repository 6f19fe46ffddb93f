import keras
import numpy as np
import pytest

from tfformer.layers import TokenAndPositionEmbedding


@pytest.mark.parametrize("position", ["learned", "sinusoidal", "sinusoidal_halves"])
def test_scaled_tokens_plus_positions(position):
    layer = TokenAndPositionEmbedding(30, 8, sequence_length=12, position=position)
    ids = np.array([[4, 9, 2, 0]])
    out = np.asarray(layer(ids))
    tokens = np.asarray(layer.token_embedding.embeddings)[ids] * np.sqrt(8)
    positions = np.asarray(layer.position_embedding(np.zeros((1, 4, 8), "float32")))
    np.testing.assert_allclose(out, tokens + positions, atol=1e-5)


def test_mask_zero_produces_a_keras_mask_that_flows():
    ids = np.array([[5, 6, 0, 0], [1, 2, 3, 0]])
    layer = TokenAndPositionEmbedding(10, 8, sequence_length=4, mask_zero=True)
    np.testing.assert_array_equal(layer.compute_mask(ids), ids != 0)
    tokens = keras.Input((None,), dtype="int32")
    pooled = keras.layers.GlobalAveragePooling1D()(layer(tokens))
    model = keras.Model(tokens, pooled)
    expected = [np.asarray(layer(ids))[b, ids[b] != 0].mean(0) for b in range(2)]
    np.testing.assert_allclose(model(ids), np.stack(expected), atol=1e-5)


def test_a_padding_id_that_is_not_zero_masks_only_itself():
    """Marian's pad is its last id and its id 0 is </s>: only the pad is masked, through a
    Keras model, and the config round trips."""
    ids = np.array([[5, 0, 9, 9], [1, 2, 3, 0]])
    layer = TokenAndPositionEmbedding(10, 8, position="sinusoidal_halves", padding_id=9)
    np.testing.assert_array_equal(layer.compute_mask(ids), ids != 9)
    tokens = keras.Input((None,), dtype="int32")
    model = keras.Model(tokens, keras.layers.GlobalAveragePooling1D()(layer(tokens)))
    expected = [np.asarray(layer(ids))[b, ids[b] != 9].mean(0) for b in range(2)]
    np.testing.assert_allclose(model(ids), np.stack(expected), atol=1e-5)
    again = TokenAndPositionEmbedding.from_config(layer.get_config())
    assert (again.padding_id, again.position) == (9, "sinusoidal_halves")
    with pytest.raises(ValueError, match="padding_id must be an id below vocabulary_size=10"):
        TokenAndPositionEmbedding(10, 8, position="sinusoidal", padding_id=10)
    with pytest.raises(ValueError, match="not set with mask_zero"):
        TokenAndPositionEmbedding(10, 8, position="sinusoidal", padding_id=3, mask_zero=True)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vocabulary_size": 0, "d_model": 8, "sequence_length": 4}, "vocabulary_size=0"),
        ({"vocabulary_size": 10, "d_model": 8}, "needs sequence_length"),
        ({"vocabulary_size": 10, "d_model": 8, "position": "rotary"}, "position='rotary'"),
    ],
)
def test_bad_configuration_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TokenAndPositionEmbedding(**kwargs)
