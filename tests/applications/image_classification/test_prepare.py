"""`tfformer prepare image_classification`: any layout as TFRecord shards that `--data`
reads, bad images left out and named, an interrupted run finished by the same command, and a
shard cut short later named and counted."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

from applications import cli
from applications.common import shards
from applications.common.text_files import DataError
from applications.image_classification import data
from applications.image_classification.config import PRESETS, ImageClassificationConfig

CONFIG = ImageClassificationConfig(**{**PRESETS["tiny"], "image_size": 16, "patch_size": 8,
                                      "augment": False, "max_bad_share": 0.1})


def _folder(root, count=30):
    """Two class folders of numbered images (the number in the first pixel), and a PNG cut
    short."""
    rng = np.random.default_rng(0)
    for number in range(count):
        folder = root / ("odd" if number % 2 else "even")
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
        pixels[0, 0, 0] = number
        (folder / f"{number:02d}.png").write_bytes(tf.io.encode_png(pixels).numpy())
    (root / "odd" / "15.png").write_bytes((root / "odd" / "15.png").read_bytes()[:-40])
    return str(root)


def _numbers(split, config=CONFIG):
    return sorted(int(x[0, 0, 0]) for images, _ in data.batches(split, config)
                  for x in images.numpy())


def _prepare(source, output, *options):
    return cli.main(["prepare", "image_classification", "--data", source, "--output",
                     str(output), "--set", "image_size=16", "--set", "patch_size=8",
                     "--set", "max_bad_share=0.1", *options])


def test_prepared_shards_hold_the_folders_good_images(tmp_path, capfd):
    source = _folder(tmp_path / "folder")
    assert _prepare(source, tmp_path / "prepared", "--shards", "4") == 0
    printed = capfd.readouterr()
    assert "15.png: a PNG cut short" in printed.err
    assert "train 26 images in 4 shards, val 3 images in 3 shards" in printed.out
    listed, names = data.list_images(str(tmp_path / "prepared"), CONFIG)
    original, original_names = data.list_images(source, dataclasses.replace(
        CONFIG, max_bad_share=0.5))
    assert names == original_names == ["even", "odd"]
    for split in ("train", "val"):
        assert listed[split].count == len(_numbers(original[split]))
        assert _numbers(listed[split]) == _numbers(original[split])
    assert len(listed["train"].files) == 4
    # Shards split the shuffled training images in order: not class by class.
    first = [int(x[0, 0, 0]) for x, _ in data.batches(dataclasses.replace(
        listed["train"], records=shards.read_records([listed["train"].files[0][0]],
                                                     data._parse_example)), CONFIG).unbatch()]
    assert {n % 2 for n in first} == {0, 1}


def test_an_interrupted_prepare_keeps_finished_shards_and_the_same_command_finishes(
        tmp_path, monkeypatch, capfd):
    source = _folder(tmp_path / "folder")
    assert _prepare(source, tmp_path / "whole", "--shards", "4") == 0
    written = []
    real = shards.serialize

    def fail_at_the_fifteenth(**features):
        written.append(1)
        if len(written) == 15:
            raise KeyboardInterrupt
        return real(**features)

    output = tmp_path / "interrupted"
    with monkeypatch.context() as patch:
        patch.setattr(shards, "serialize", fail_at_the_fifteenth)
        with pytest.raises(SystemExit):
            _prepare(source, output, "--shards", "4")
    left = sorted(os.listdir(output))
    assert "dataset.json" not in left and not [n for n in left if n.endswith(".partial")]
    assert "train-00001-of-00004.tfrecord" in left  # 27 records: shards of 6, 7, 7, 7
    assert "train-00002-of-00004.tfrecord" not in left
    with pytest.raises(DataError, match="an unfinished `tfformer prepare`; run the same"):
        data.list_images(str(output), CONFIG)
    capfd.readouterr()
    assert _prepare(source, output, "--shards", "4") == 0
    for name in os.listdir(tmp_path / "whole"):
        assert (output / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name


def test_a_shard_cut_short_is_named_and_its_images_count_as_bad(tmp_path, capfd):
    source = _folder(tmp_path / "folder", count=60)
    prepared = tmp_path / "prepared"
    assert _prepare(source, prepared, "--shards", "8") == 0
    shard = prepared / "train-00003-of-00008.tfrecord"
    shard.write_bytes(shard.read_bytes()[:100])
    capfd.readouterr()
    splits, _ = data.list_images(str(prepared), dataclasses.replace(CONFIG, max_bad_share=0.2))
    assert f"skipping shard {shard}: cut short (100 of" in capfd.readouterr().out
    assert splits["train"].count == len(_numbers(splits["train"])) < 53
    with pytest.raises(DataError, match=r"too many bad examples in the train images: the "
                                        r"shards .*train-00003-of-00008.tfrecord are damaged"):
        data.list_images(str(prepared), CONFIG)
