import numpy as np
import pytest
import tensorflow as tf

from applications import cli
from tfformer import plots
from tfformer.layers import PositionEmbedding, SinusoidalPositionEncoding


def _png_size(path):
    image = tf.io.decode_png(open(path, "rb").read())
    return tuple(image.shape[:2])


def test_plotted_sinusoidal_encoding_is_the_layers_output(tmp_path):
    path = str(tmp_path / "positions.png")
    drawn = plots.plot_positions("sinusoidal", 40, 16, path)
    expected = np.asarray(SinusoidalPositionEncoding()(np.zeros((1, 40, 16), "float32")))[0]
    np.testing.assert_array_equal(drawn["encoding"], expected)
    np.testing.assert_allclose(drawn["similarity"], expected @ expected.T, rtol=1e-6)
    # Every position is most similar to itself.
    assert (np.argmax(drawn["similarity"], axis=1) == np.arange(40)).all()
    assert _png_size(path) == (450, 1100)


def test_learned_and_rotary_encodings(tmp_path):
    table = PositionEmbedding(sequence_length=12)
    drawn = plots.plot_positions("learned", 12, 8, str(tmp_path / "l.png"), layer=table)
    np.testing.assert_array_equal(drawn["encoding"], np.asarray(table.position_embeddings))
    rotary = plots.plot_positions("rotary", 30, 8, str(tmp_path / "r.png"))["similarity"]
    # Rotary similarity depends only on the offset: constant along each diagonal.
    for offset in range(-5, 6):
        diagonal = np.diagonal(rotary, offset)
        np.testing.assert_allclose(diagonal, diagonal[0], atol=1e-4)
    with pytest.raises(ValueError, match="kind must be one of"):
        plots.position_encoding("alibi", 4, 4)


def test_attention_grid_keeps_the_weights(tmp_path):
    weights = np.random.default_rng(0).dirichlet(np.ones(6), size=(3, 4)).astype("float32")
    drawn = plots.plot_attention(weights, str(tmp_path / "a.png"), list("abcd"), list("ABCDEF"))
    np.testing.assert_array_equal(drawn, weights)
    np.testing.assert_allclose(drawn.sum(-1), 1.0, atol=1e-6)
    assert (tmp_path / "a.png").stat().st_size > 0
    with pytest.raises(ValueError, match="scores must be"):
        plots.plot_attention(np.zeros(3), str(tmp_path / "b.png"))


def test_training_curves_read_back_what_was_logged(tmp_path, capsys):
    logdir = tmp_path / "logs"
    for run, losses in (("train", [3.0, 2.0, 1.5]), ("validation", [3.2, 2.4, 2.0])):
        writer = tf.summary.create_file_writer(str(logdir / run))
        with writer.as_default():
            for epoch, loss in enumerate(losses):
                tf.summary.scalar("epoch_loss", loss, step=epoch)
        writer.close()
    output = str(tmp_path / "curves.png")
    curves = plots.plot_training_curves(str(logdir), output)
    assert [v for _, v in curves["train/epoch_loss"]] == pytest.approx([3.0, 2.0, 1.5])
    assert [s for s, _ in curves["validation/epoch_loss"]] == [0, 1, 2]
    assert cli.main(["plot", "curves", "--logdir", str(logdir), "--output", output]) == 0
    assert f"wrote {output}" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="no TensorBoard scalars"):
        plots.read_scalars(str(tmp_path / "empty"))


def test_self_attention_maps_are_the_weights_the_layers_used(tmp_path):
    import keras

    from tfformer.layers import TransformerEncoder

    encoder = TransformerEncoder(2, 16, 2, 32, dropout=0.0, window=(2, 0))
    inputs = keras.Input((None, 16))
    model = keras.Model(inputs, encoder(inputs))
    x = np.random.default_rng(0).normal(size=(2, 7, 16)).astype("float32")
    recorded = plots.attention_weights(model, x)
    assert len(recorded) == 2
    _, expected = encoder(x, return_attention_scores=True)
    for weights, reference in zip(recorded.values(), expected):
        np.testing.assert_allclose(weights, reference, atol=1e-6)
        i, j = np.indices((7, 7))
        assert np.all(weights[..., (j > i) | (j < i - 2)] == 0)  # the truncated band
        np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    drawn = plots.plot_self_attention(model, x, str(tmp_path / "self.png"), layer=1, example=1)
    np.testing.assert_array_equal(drawn, list(recorded.values())[1][1])
    # The layers are left as they were.
    assert "attend" not in vars(encoder.blocks[0]._attention)
