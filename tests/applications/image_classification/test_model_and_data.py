import dataclasses
import gzip
import io
import struct

import keras
import numpy as np
import pytest
import tensorflow as tf

from applications.common.bad_examples import bad_data_errors
from applications.common.text_files import DataError
from applications.image_classification import builtin_data, data
from applications.image_classification.config import PRESETS, ImageClassificationConfig
from applications.image_classification.model import build_vit
from applications.image_classification.preprocessing import resize_pixels

TINY = ImageClassificationConfig(**PRESETS["tiny"])


def test_vit_b16_has_the_papers_parameter_count():
    model = build_vit(ImageClassificationConfig(**PRESETS["base"]), num_classes=1000)
    # ViT-B/16 at 224x224 with a 1000-class head: 86.6 million (86,567,656 exactly).
    assert model.count_params() == 86_567_656


def test_shifted_patches_vit_saves_and_loads_with_the_same_outputs(tmp_path):
    config = dataclasses.replace(TINY, shifted_patches=True)
    model = build_vit(config, num_classes=3)
    assert model.get_layer("patch_embedding").__class__.__name__ == "ShiftedPatchEmbedding"
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("float32")
    path = str(tmp_path / "vit.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded(images), model(images), atol=1e-5)


@pytest.mark.parametrize("pooling", ["class_token", "mean"])
def test_the_rollout_is_from_what_the_head_reads(pooling):
    """classify_with_rollout: the class token's row of the rollout (its own share kept), or
    the mean of the patches' rows (all of it spread over them); logits as a plain call."""
    from tfformer import plots
    from tfformer.attention_rollout import attention_rollout

    model = build_vit(dataclasses.replace(TINY, pooling=pooling, num_layers=2), num_classes=3)
    images = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3)).astype("float32")
    logits, reach = model.classify_with_rollout(images)
    np.testing.assert_allclose(logits, model(images), atol=1e-5)
    rolled = np.asarray(attention_rollout(list(plots.attention_weights(model, images)
                                               .values())))  # (B, T, T)
    if pooling == "class_token":
        np.testing.assert_allclose(reach, rolled[:, 0, 1:], atol=1e-5)
        assert np.all(np.sum(reach, axis=1) < 1.0)
    else:
        np.testing.assert_allclose(reach, rolled.mean(axis=1), atol=1e-5)
        np.testing.assert_allclose(np.sum(reach, axis=1), 1.0, atol=1e-5)


def test_builtin_shapes_are_balanced_and_reproducible():
    splits = builtin_data.generate(600, size=32, seed=4)
    images, labels = splits["train"]
    assert images.dtype == np.uint8 and images.shape[1:] == (32, 32, 3)
    assert set(labels) == set(range(len(builtin_data.CLASS_NAMES)))
    np.testing.assert_array_equal(builtin_data.generate(600, size=32, seed=4)["val"][0],
                                  splits["val"][0])


def test_shape_masks_have_the_expected_areas():
    area = {name: builtin_data.shape_mask(name, 200, 100, 100, 60, 0.3).mean()
            for name in builtin_data.CLASS_NAMES}
    np.testing.assert_allclose(area["circle"], np.pi * 60**2 / 200**2, rtol=0.02)
    np.testing.assert_allclose(area["square"], 2 * 60**2 / 200**2, rtol=0.02)
    np.testing.assert_allclose(area["ring"], np.pi * (60**2 - 36**2) / 200**2, rtol=0.03)
    assert area["star"] < area["circle"] and area["triangle"] < area["square"]


def _idx(path, array, magic):
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def _decoded(split, config=TINY):
    """(images, labels) of a whole split, through the streaming pipeline."""
    batches = data.batches(split, config)
    assert not batches.options().autotune.enabled  # example_stream.for_evaluation
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in batches])
    return np.concatenate(images), np.concatenate(labels)


def test_reads_mnist_idx_files_and_holds_out_validation(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, size=(50, 28, 28))
    labels = np.arange(50) % 10
    _idx(tmp_path / "train-images-idx3-ubyte.gz", images, 2051)
    _idx(tmp_path / "train-labels-idx1-ubyte.gz", labels, 2049)
    splits, names = data.list_images(str(tmp_path), TINY)
    assert names == [str(i) for i in range(10)]
    assert (splits["train"].count, splits["val"].count) == (45, 5)
    train_images, train_labels = _decoded(splits["train"])
    val_images, val_labels = _decoded(splits["val"])
    assert train_images.shape == (45, 32, 32, 3) and len(val_labels) == 5
    held = [9, 19, 29, 39, 49]  # every tenth, spread over the file, not its tail
    np.testing.assert_array_equal(val_labels, labels[held])
    np.testing.assert_array_equal(train_labels, np.delete(labels, held))
    rgb = images[held, :, :, None].repeat(3, -1).astype(np.uint8)
    np.testing.assert_array_equal(val_images, resize_pixels(rgb, TINY))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03junk"))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz is not an IDX file"):
        data.list_images(str(tmp_path), TINY)


def _encode(image, fmt):
    if fmt == "png":
        return tf.io.encode_png(image).numpy()
    if fmt == "jpg":
        return tf.io.encode_jpeg(image).numpy()
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image.squeeze() if image.shape[-1] == 1 else image).save(
        buffer, format={"bmp": "BMP", "gif": "GIF"}[fmt])
    return buffer.getvalue()


def test_reads_an_image_folder_of_mixed_formats_and_skips_a_broken_file(tmp_path, capfd):
    rng = np.random.default_rng(1)
    for label, fmt in (("cats", "png"), ("cats", "jpg"), ("dogs", "bmp"), ("dogs", "gif")):
        folder = tmp_path / "train" / label
        folder.mkdir(parents=True, exist_ok=True)
        image = rng.integers(0, 255, size=(40, 30, 3), dtype=np.uint8)
        (folder / f"a.{fmt}").write_bytes(_encode(image, fmt))
    gray = rng.integers(0, 255, size=(20, 20, 1), dtype=np.uint8)
    (tmp_path / "train" / "dogs" / "gray.png").write_bytes(_encode(gray, "png"))
    splits, names = data.list_images(str(tmp_path), TINY)
    assert names == ["cats", "dogs"]
    train_images, train_labels = _decoded(splits["train"])
    assert len(train_labels) + splits["val"].count == 5
    assert train_images.shape[1:] == (32, 32, 3)
    (tmp_path / "train" / "dogs" / "broken.png").write_bytes(b"not an image")
    splits, _ = data.list_images(str(tmp_path), dataclasses.replace(TINY, max_bad_share=0.5))
    images, labels = _decoded(splits["train"], dataclasses.replace(TINY, max_bad_share=0.5))
    assert len(labels) == splits["train"].count - 1
    assert "broken.png: not a JPEG, PNG, GIF or BMP image" in capfd.readouterr().err
    with pytest.raises(DataError, match=r"too many bad examples .*broken.png"):
        with bad_data_errors():
            _decoded(splits["train"])


def test_an_empty_class_folder_is_refused_and_other_files_are_reported(tmp_path, capsys):
    rng = np.random.default_rng(3)
    for label in ("cats", "dogs"):
        folder = tmp_path / label
        folder.mkdir()
        for index in range(3):
            image = rng.integers(0, 255, size=(16, 16, 3), dtype=np.uint8)
            (folder / f"{index}.png").write_bytes(_encode(image, "png"))
    (tmp_path / "cats" / "notes.txt").write_text("not an image")
    (tmp_path / "cats" / ".DS_Store").write_bytes(b"")  # hidden files are not news
    _, names = data.list_images(str(tmp_path), TINY)
    assert names == ["cats", "dogs"]
    printed = capsys.readouterr().out
    assert "skipped 1 files" in printed and "notes.txt" in printed
    (tmp_path / "birds").mkdir()
    with pytest.raises(DataError, match=r"class folder .*birds holds no JPEG/PNG/BMP/GIF"):
        data.list_images(str(tmp_path), TINY)


def test_decoding_handles_rgba_grayscale_and_gif_the_same_way():
    rgb = np.random.default_rng(2).integers(0, 255, size=(16, 16, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, np.full((16, 16, 1), 255, np.uint8)], axis=-1)
    config = ImageClassificationConfig(image_size=16, patch_size=4)
    from_png = data.decode_image(tf.io.encode_png(rgb), config).numpy()
    from_rgba = data.decode_image(tf.io.encode_png(rgba), config).numpy()
    np.testing.assert_array_equal(from_png, rgb)
    np.testing.assert_array_equal(from_rgba, rgb)
    gray = data.decode_image(tf.io.encode_png(rgb[..., :1]), config).numpy()
    assert gray.shape == (16, 16, 3) and (gray[..., 0] == gray[..., 2]).all()


def test_training_batches_are_augmented_and_validation_batches_are_not():
    images = np.tile(np.arange(32, dtype=np.uint8)[None, None, :, None], (8, 32, 1, 3))
    labels = np.arange(8) % 2
    config = ImageClassificationConfig(**{**PRESETS["tiny"], "batch_size": 8})
    split = data.from_arrays("train", images, labels)
    val_images, val_labels = next(iter(data.one_hot(data.batches(split, config), 2)))
    np.testing.assert_array_equal(val_images, images)
    np.testing.assert_array_equal(val_labels.numpy().argmax(1), labels)
    train_images, _ = next(iter(data.training_batches(split, config, 2)))
    assert train_images.dtype == tf.uint8 and not np.array_equal(train_images, images)


def test_rand_augment_runs_in_the_training_pipeline_only():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(16) % 2
    config = ImageClassificationConfig(
        **{**PRESETS["tiny"], "batch_size": 16, "rand_augment_magnitude": 0.5})
    assert "rand_augment" not in [layer.name for layer in data.augmenter(
        dataclasses.replace(config, rand_augment_magnitude=0.0)).layers]
    rand_augment = data.augmenter(config).get_layer("rand_augment")
    x = tf.constant(images, tf.float32)
    out = rand_augment(x, training=True).numpy()
    assert out.shape == images.shape and 0 <= out.min() and out.max() <= 255
    changed = [not np.allclose(o, i) for o, i in zip(out, images)]
    assert sum(changed) >= 12  # two random operations per image; few are identities
    np.testing.assert_array_equal(rand_augment(x, training=False).numpy(), images)
    batch, _ = next(iter(data.training_batches(data.from_arrays("train", images, labels),
                                               config, 2)))
    assert batch.dtype == tf.uint8 and batch.shape == images.shape


def test_crop_augmentation_shifts_whole_pixels_with_black_borders():
    rng = np.random.default_rng(1)
    images = rng.integers(1, 256, (16, 12, 12, 3), dtype=np.uint8)
    config = ImageClassificationConfig(**{
        **PRESETS["tiny"], "image_size": 12, "patch_size": 4, "augment_crop_padding": 2,
        "augment_translate": 0.0, "augment_zoom": 0.0})
    assert [layer.name for layer in data.augmenter(config).layers] == ["flip", "crop"]
    out = data.augmenter(config)(tf.constant(images, tf.float32), training=True).numpy()
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0))).astype(np.float32)
    shifts = []
    for source, result in zip(padded, out):
        matches = [(dy, dx) for flipped in (source, source[:, ::-1]) for dy in range(5)
                   for dx in range(5) if np.array_equal(flipped[dy:dy + 12, dx:dx + 12], result)]
        assert matches, "every output is the image (maybe flipped) shifted by whole pixels"
        shifts.append(matches[0])
    assert len(set(shifts)) > 3  # positions differ from image to image
