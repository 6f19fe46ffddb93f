"""Image folders are streamed: damaged images are skipped, named and counted, too many stop
the run with a named error, and a run killed mid-epoch resumes at the same place in the
stream (bad images and all) to the weights of an uninterrupted run."""

import dataclasses
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from applications import cli
from applications.common import bad_examples
from applications.image_classification import data
from applications.image_classification.config import PRESETS, ImageClassificationConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
CONFIG = ImageClassificationConfig(**{**PRESETS["tiny"], "image_size": 16, "patch_size": 8,
                                      "batch_size": 8, "augment": False})


def _jpeg(rng):
    return tf.io.encode_jpeg(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).numpy()


def _png(rng):
    return tf.io.encode_png(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).numpy()


def _corrupt_middle(encoded):
    damaged = bytearray(encoded)
    for offset in range(200, 450, 5):
        damaged[offset] ^= 0xFF
    return bytes(damaged)


DAMAGE = {  # file name -> (bytes from an rng, the reason the log gives)
    "empty.png": (lambda rng: b"", "the file is empty"),
    "notes.jpg": (lambda rng: b"shopping list", "not a JPEG, PNG, GIF or BMP image"),
    "cut.jpg": (lambda rng: _jpeg(rng)[:300], "a JPEG cut short (no end-of-image marker)"),
    "cut.png": (lambda rng: _png(rng)[:-30], "a PNG cut short (no IEND chunk)"),
    "scrambled.jpg": (lambda rng: _corrupt_middle(_jpeg(rng)), "corrupt image data"),
}


def _folder(root, per_class=12, damaged=()):
    rng = np.random.default_rng(0)
    for name in ("cats", "dogs"):
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            encode = _png if index % 2 else _jpeg
            (root / name / f"{index:02d}.{'png' if index % 2 else 'jpg'}").write_bytes(
                encode(rng))
    for number, file_name in enumerate(damaged):
        make, _ = DAMAGE[file_name]
        # "00_" sorts them among the first records: the held-out ones are the last
        (root / ("cats", "dogs")[number % 2] / f"00_{file_name}").write_bytes(make(rng))
    return str(root)


def test_damaged_images_are_skipped_named_and_logged(tmp_path, capfd):
    directory = _folder(tmp_path / "data", damaged=list(DAMAGE))
    config = dataclasses.replace(CONFIG, max_bad_share=0.5, val_fraction=0.01)
    splits, names = data.list_images(directory, config)
    train = splits["train"]
    log = tmp_path / "bad.tsv"
    stream = data.training_batches(train, config, len(names), log_path=str(log))
    good = train.count - len(DAMAGE)
    images = next(iter(stream.unbatch().batch(good)))[0]
    assert images.shape == (good, 16, 16, 3)
    err = capfd.readouterr().err
    for file_name, (_, reason) in DAMAGE.items():
        assert f"{file_name}: {reason}" in err, err
    logged = [line.split("\t") for line in log.read_text().splitlines()]
    assert sorted(os.path.basename(path) for _, path, _ in logged) == sorted(
        f"00_{name}" for name in DAMAGE)
    assert bad_examples.bad_ids(str(log)) == {int(index) for index, _, _ in logged}
    # Evaluation skips them too, and every good image is classified once.
    labels = np.concatenate([y.numpy() for _, y in data.batches(train, config)])
    assert len(labels) == good and set(labels) == {0, 1}


def test_more_bad_images_than_allowed_stop_training_naming_the_last(tmp_path, capsys):
    directory = _folder(tmp_path / "data", damaged=["cut.jpg", "notes.jpg"])
    status = None
    with pytest.raises(SystemExit) as exit_info:
        status = cli.main(["train", "image_classification", "--data", directory, "--workdir",
                           str(tmp_path / "run"), "--export-dir", str(tmp_path / "export"),
                           "--set", "image_size=16", "--set", "patch_size=8",
                           "--set", "num_layers=1", "--set", "d_model=16",
                           "--set", "num_heads=2", "--set", "intermediate_dim=32",
                           "--set", "batch_size=8", "--set", "max_bad_share=0.05"])
    assert status is None and exit_info.value.code != 0
    err = capsys.readouterr().err
    assert "too many bad examples in the train images: 2 of the first" in err, err
    assert "max_bad_share=0.05" in err and "Traceback" not in err
    assert "cut.jpg" in err or "notes.jpg" in err


SETTINGS = ["image_size=16", "patch_size=8", "num_layers=1", "d_model=16", "num_heads=2",
            "intermediate_dim=32", "batch_size=8", "epochs=2", "steps_per_epoch=24",
            "max_bad_share=0.1", "dropout=0.1", "export_weights=last"]


def _command(data_dir, workdir, export_dir):
    command = [sys.executable, "-m", "applications.cli", "train", "image_classification",
               "--data", data_dir, "--workdir", str(workdir), "--export-dir", str(export_dir),
               "--deterministic", "--strategy", "one_device"]
    for setting in SETTINGS:
        command += ["--set", setting]
    return command


def _run(*args):
    result = subprocess.run(_command(*args), cwd=ROOT, capture_output=True, text=True,
                            timeout=600, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _weights(export_dir):
    reader = tf.train.load_checkpoint(os.path.join(export_dir, "1", "variables", "variables"))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name.endswith("VARIABLE_VALUE")}


def test_sigkill_mid_epoch_then_resume_with_a_bad_image_equals_an_uninterrupted_run(tmp_path):
    """22 good training images a pass and a bad one, 8 a batch, 24 steps an epoch: epoch 2
    starts in the middle of a pass, after 8 passes each holding the bad image, which the
    position must count."""
    directory = _folder(tmp_path / "data", damaged=["cut.png"])
    _run(directory, tmp_path / "whole", tmp_path / "whole_export")
    workdir, export_dir = tmp_path / "killed", tmp_path / "killed_export"
    process = subprocess.Popen(
        _command(directory, workdir, export_dir), cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1"))
    seen = []
    for line in process.stdout:  # epoch 1 ends with a backup; kill during epoch 2
        seen.append(line)
        if line.startswith("epoch 2/2, step"):
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "".join(seen)[-3000:]
    output = _run(directory, workdir, export_dir)
    # 192 good images consumed: 8 passes of 23 records (22 good), then 16 or 17 records of
    # the 9th, as its bad one comes before or after its 16th good one.
    start = int(re.search(r"resuming at epoch 2: the training stream starts at image (\d+)",
                          output).group(1))
    assert start in (8 * 23 + 16, 8 * 23 + 17), output
    whole, resumed = _weights(tmp_path / "whole_export"), _weights(export_dir)
    assert whole.keys() == resumed.keys() and whole
    for name in whole:
        np.testing.assert_array_equal(resumed[name], whole[name], err_msg=name)
