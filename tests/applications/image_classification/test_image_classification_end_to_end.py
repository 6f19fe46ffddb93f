"""Train a very small ViT briefly, export it, and serve it as TF Serving would."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from applications import cli
from applications.image_classification.config import PRESETS, ImageClassificationConfig
from applications.image_classification.train import train
from tests.support.serving_checks import (
    classify_ops,
    saved_model_cli_run,
    serve_groups_in_session,
    signature_names,
    warmup_and_readme_requests,
)
from tfformer.export import saved_model_ops

CONFIG = dataclasses.replace(
    ImageClassificationConfig(**PRESETS["tiny"]), builtin_examples=400, num_layers=1,
    d_model=32, num_heads=2, intermediate_dim=64, epochs=1, steps_per_epoch=5, batch_size=32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("image_classification")
    result = train(CONFIG, workdir=str(root / "run"), export_dir=str(root / "export"), verbose=0,
                   examples=0)
    return {**result, "root": root}


def _png(seed, size=(40, 50), channels=3):
    image = np.random.default_rng(seed).integers(0, 255, size=(*size, channels), dtype=np.uint8)
    return tf.io.encode_png(image).numpy()


def _jpeg(seed, size=(300, 200)):
    image = np.random.default_rng(seed).integers(0, 255, size=(*size, 3), dtype=np.uint8)
    return tf.io.encode_jpeg(image).numpy()


def _every_signature_requests():
    batch = [_png(0), _jpeg(1), _png(2, channels=1), _png(3, size=(1200, 900), channels=4)]
    pixels = np.random.default_rng(4).integers(0, 255, size=(2, 32, 32, 3), dtype=np.uint8)
    return [("serving_default", {"image_bytes": batch}), ("pixels", {"pixels": pixels}),
            ("attention", {"image_bytes": batch}),
            ("serving_default", {"image_bytes": [b"definitely not"]}),
            ("serving_default", {"image_bytes": []}),
            ("pixels", {"pixels": np.zeros((0, 32, 32, 3), np.uint8)}),
            ("attention", {"image_bytes": []})]


@pytest.fixture(scope="module")
def session_answers(trained):
    """The answers to the requests of the two tests below, through TF Serving's session path
    (checked against `tf.saved_model.load`'s) in one fresh process that loads the export once."""
    path = trained["export_path"]
    assert {name for name, _ in _every_signature_requests()} == signature_names(path)
    warmup, rest = warmup_and_readme_requests(path, "image_classification",
                                              {"star.png": _jpeg(30)})
    return {"requests": (warmup, rest), **serve_groups_in_session(path, {
        "every signature": _every_signature_requests(), "warm-up and README": warmup + rest})}


def test_every_signature_answers_through_tf_servings_loader(trained, session_answers):
    """TF Serving's path (MetaGraph into a session, restore op, init op, `Session.run`) answers
    every signature as `tf.saved_model.load` does, and as the trained server did."""
    requests = _every_signature_requests()
    batch, pixels = requests[0][1]["image_bytes"], requests[1][1]["pixels"]
    served, from_pixels, attention, bad, *empty = session_answers["every signature"]
    server = trained["server"]
    in_process = server.serve(tf.constant(batch))
    np.testing.assert_allclose(served["probabilities"], in_process["probabilities"], atol=1e-5)
    assert served["top_k_labels"].tolist() == in_process["top_k_labels"].numpy().tolist()
    assert np.allclose(np.sum(served["probabilities"], axis=1), 1.0, atol=1e-5)
    names = {name.encode() for name in trained["class_names"]}
    assert all(label in names for row in served["top_k_labels"] for label in row)
    assert served["top_k_labels"].shape == (4, CONFIG.top_k)
    np.testing.assert_allclose(from_pixels["probabilities"],
                               server.serve_pixels(tf.constant(pixels))["probabilities"],
                               atol=1e-5)
    np.testing.assert_allclose(attention["probabilities"], served["probabilities"], atol=1e-5)
    grid = CONFIG.image_size // CONFIG.patch_size
    assert attention["rollout"].shape == (4, grid, grid)
    assert bad["error"] == "InvalidArgumentError"
    assert "Unknown image file format" in bad["message"]
    classes = len(trained["class_names"])
    for outputs in empty:  # an empty batch: empty outputs of the right shapes
        assert outputs["probabilities"].shape == (0, classes)
        assert outputs["top_k_labels"].shape == outputs["top_k_scores"].shape == (0, CONFIG.top_k)
    assert empty[2]["rollout"].shape == (0, grid, grid)


def test_saved_model_cli_runs_the_export(trained, tmp_path):
    images = tmp_path / "images.npy"
    np.save(images, np.array([_png(7)], dtype=object), allow_pickle=True)
    output = saved_model_cli_run(trained["export_path"], "serving_default",
                                 inputs=f"image_bytes={images}")
    expected = trained["server"].serve(tf.constant([_png(7)]))["top_k_labels"].numpy()[0, 0]
    assert "Result for output key top_k_labels" in output
    assert repr(expected) in output


def test_warmup_and_readme_rest_requests_answer_through_the_session_path(session_answers):
    """The export's warm-up records reach every signature; README's REST bodies, turned into
    tensors as TF Serving's REST API does, name real inputs with the right dtypes."""
    warmup, rest = session_answers["requests"]
    assert all("error" not in answer for answer in session_answers["warm-up and README"])
    assert len(rest) == 1


def test_pixels_signature_equals_the_bytes_signature_for_lossless_images(trained):
    image = np.random.default_rng(5).integers(0, 255, size=(1, 32, 32, 3), dtype=np.uint8)
    loaded = tf.saved_model.load(trained["export_path"])
    from_pixels = loaded.signatures["pixels"](pixels=tf.constant(image))
    from_bytes = loaded.signatures["serving_default"](
        image_bytes=tf.constant([tf.io.encode_png(image[0]).numpy()]))
    np.testing.assert_allclose(from_pixels["probabilities"], from_bytes["probabilities"],
                               atol=1e-6)


def test_export_uses_only_tensorflow_and_tf_text_ops(trained):
    assert classify_ops(saved_model_ops(trained["export_path"]))["unknown"] == []


def test_cli_classify_and_evaluate(trained, tmp_path, capsys):
    export_dir = str(trained["root"] / "export")
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    good.write_bytes(_png(11))
    bad.write_bytes(b"garbage")
    missing = tmp_path / "missing.png"
    assert cli.main(["classify", export_dir, str(bad), str(missing), str(good)]) == 1
    captured = capsys.readouterr()  # every file is reported, and the failures make the exit 1
    assert captured.out.startswith(f"{good}: ") and "Unknown image file format" in captured.err
    assert f"{missing}: error: No such file or directory" in captured.err
    assert "2 of 3 files failed" in captured.err
    assert cli.main(["classify", export_dir, str(good)]) == 0
    capsys.readouterr()
    plot = tmp_path / "confusion.png"
    assert cli.main(["evaluate", "image_classification", "--model", export_dir, "--output",
                     str(plot), "--set", f"builtin_examples={CONFIG.builtin_examples}"]) == 0
    assert "top-1" in capsys.readouterr().out
    assert tf.io.decode_png(plot.read_bytes()).shape[-1] in (3, 4)


def test_attention_signature_rolls_out_the_weights_of_its_own_pass(trained, tmp_path, capsys):
    from tfformer import plots
    from tfformer.attention_rollout import attention_rollout

    image = np.random.default_rng(21).integers(0, 255, size=(1, 32, 32, 3), dtype=np.uint8)
    png = tf.io.encode_png(image[0]).numpy()
    loaded = tf.saved_model.load(trained["export_path"])
    outputs = loaded.signatures["attention"](image_bytes=tf.constant([png]))
    plain = loaded.signatures["serving_default"](image_bytes=tf.constant([png]))
    np.testing.assert_allclose(outputs["probabilities"], plain["probabilities"], atol=1e-6)
    grid = CONFIG.image_size // CONFIG.patch_size
    rollout = outputs["rollout"].numpy()
    assert rollout.shape == (1, grid, grid) and np.all(rollout >= 0)
    # The same numbers from the weights the Keras model's attention layers used.
    recorded = plots.attention_weights(trained["model"], image.astype("float32"))
    rolled = np.asarray(attention_rollout(list(recorded.values())))  # (1, T, T)
    if CONFIG.pooling == "class_token":  # what the head reads: the class token's row
        expected = rolled[:, 0, 1:]
        assert 0.0 < rollout.sum() < 1.0  # the class token keeps part of its own mass
    else:  # the mean over the patches' rows, which spreads all of it over them
        expected = rolled.mean(axis=1)
        np.testing.assert_allclose(rollout.sum(), 1.0, atol=1e-5)
    np.testing.assert_allclose(rollout.reshape(1, -1), expected, atol=1e-5)
    path = tmp_path / "image.png"
    path.write_bytes(png)
    output = str(tmp_path / "rollout.png")
    assert cli.main(["plot", "attention", "image_classification", str(path), "--model",
                     str(trained["root"] / "export"), "--output", output]) == 0
    assert capsys.readouterr().out.split()[0] in trained["class_names"]
    from PIL import Image
    assert Image.open(output).size == (700, 360)


def test_load_and_export_a_run_again(trained, tmp_path, capsys):
    from applications.image_classification import load

    classifier = load(str(trained["root"] / "run"))
    images = [_png(40), _jpeg(41)]
    expected = trained["server"].serve(tf.constant(images))
    answers = classifier.classify(images)
    assert [[label for label, _ in row] for row in answers] == [
        [label.decode() for label in row] for row in expected["top_k_labels"].numpy()]
    np.testing.assert_allclose([[score for _, score in row] for row in answers],
                               expected["top_k_scores"], atol=1e-6)
    assert cli.main(["export", "image_classification", "--workdir", str(trained["root"] / "run"),
                     "--export-dir", str(tmp_path / "exports"), "--weights", "last"]) == 0
    assert "checkpoints/last.weights.h5" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == ["1"]


def test_an_int8_export_of_the_run_serves_as_the_quantized_classifier(trained, tmp_path, capsys):
    """`tfformer export --quantize int8`: the patch embedding, every projection and the head
    hold int8 kernels, and TF Serving's loader answers as the quantized classifier does."""
    import keras

    from applications.image_classification import builtin_data, load
    from tests.support.serving_checks import serve_in_session

    quantized = load(str(trained["root"] / "run"), quantize="int8")
    projections = [layer for layer in quantized.model._flatten_layers()
                   if isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense))]
    assert {layer.name for layer in projections} >= {"projection", "query", "head"}
    assert {layer.quantization_mode for layer in projections} == {"int8"}
    assert cli.main(["export", "image_classification", "--workdir", str(trained["root"] / "run"),
                     "--export-dir", str(tmp_path / "exports"), "--quantize", "int8"]) == 0
    assert "weights to int8" in capsys.readouterr().out
    rng = np.random.default_rng(3)
    images = [tf.io.encode_png(builtin_data.render(name, 64, rng)).numpy()
              for name in builtin_data.CLASS_NAMES[:6]]
    (served,) = serve_in_session(str(tmp_path / "exports" / "1"),
                                 [("serving_default", {"image_bytes": images})])
    expected = quantized.classify(images)
    assert [[label.decode() for label in row] for row in served["top_k_labels"]] == [
        [label for label, _ in row] for row in expected]
    np.testing.assert_allclose(served["top_k_scores"],
                               [[score for _, score in row] for row in expected], atol=1e-5)
    floats = trained["server"].serve(tf.constant(images))["top_k_scores"].numpy()
    assert 0 < np.max(np.abs(served["top_k_scores"] - floats)) < 0.05


def test_other_applications_commands_name_this_export_and_run(trained, capsys, tmp_path):
    from tests.support.wrong_kind import assert_other_applications_name_it

    assert_other_applications_name_it(trained["root"], "image_classification", capsys, tmp_path)
