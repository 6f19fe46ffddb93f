"""No run is lost: an export directory that can't be written fails before training, an export
that fails after training keeps the backup, so the same command exports again, and a second
command can't take over a live run's directory."""

import contextlib
import dataclasses
import io
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest

from applications.common.config import ConfigError
from applications.common.run_lock import run_lock
from applications.common.text_files import DataError
from applications.image_classification import serving
from applications.image_classification.config import PRESETS, ImageClassificationConfig
from applications.image_classification.train import train

CONFIG = dataclasses.replace(
    ImageClassificationConfig(**PRESETS["tiny"]), builtin_examples=200, num_layers=1,
    d_model=32, num_heads=2, intermediate_dim=64, epochs=2, steps_per_epoch=3, batch_size=16)


def test_an_unwritable_export_dir_fails_before_training(tmp_path):
    blocker = tmp_path / "saved_models"
    blocker.write_text("a file where the exports should go")
    with pytest.raises(ConfigError, match=r"--export-dir .* can't be written: .* is not a "
                                          r"directory"):
        train(CONFIG, workdir=str(tmp_path / "run"), export_dir=str(blocker / "images"),
              verbose=0, examples=0)
    assert not (tmp_path / "run").exists()  # nothing was trained or written


def test_a_failed_export_keeps_the_backup_and_the_same_command_exports_again(
        backup_left, tmp_path, capsys):
    workdir, export_dir = _copy(backup_left, tmp_path)
    assert (workdir / "backup" / "training_metadata.json").exists()
    trained = train(CONFIG, workdir=str(workdir), export_dir=str(export_dir), verbose=0,
                    examples=0)
    assert trained["history"].get("loss", []) == []  # nothing left to train: resumed at the end
    rescored = [line for line in capsys.readouterr().out.splitlines() if line.startswith("test:")]
    assert rescored == backup_left["scored"]  # the trained weights, restored from the backup
    assert sorted(os.listdir(export_dir)) == ["1"]
    assert not (workdir / "backup").exists()  # deleted once the export was written
    image = np.zeros((1, 32, 32, 3), np.uint8)
    assert trained["server"].serve_pixels(image)["probabilities"].shape == (1, 6)


def test_a_second_run_in_a_live_runs_workdir_is_refused_naming_it(tmp_path):
    workdir = tmp_path / "run"
    with run_lock(str(workdir), "worker_0"):  # as a live training process holds it
        with pytest.raises(ConfigError, match=rf"{workdir} is in use by process {os.getpid()} "
                                              rf"on .*; wait for it to finish"):
            train(CONFIG, workdir=str(workdir), export_dir=str(tmp_path / "export"), verbose=0,
                  examples=0)
    assert not (workdir / "config.json").exists() and not (tmp_path / "export").exists()


def test_a_dead_processs_lock_is_taken_over(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    dead = int(finished.stdout)
    lock = tmp_path / ".worker_0.lock"
    lock.write_text(f"{dead}\n{socket.gethostname()}\n0\n")
    with run_lock(str(tmp_path), "worker_0") as path:
        assert open(path).read().split("\n")[0] == str(os.getpid())
    assert not lock.exists()  # released at the end
    lock.write_text("half writ")  # a lock that was never finished is taken over too
    with run_lock(str(tmp_path), "worker_0"):
        pass


@pytest.fixture(scope="module")
def backup_left(tmp_path_factory):
    """A run that trained CONFIG's two epochs and failed to export (a full disk), so both
    backup generations stay; with the test score it printed. Tests work on copies."""
    root = tmp_path_factory.mktemp("backup_left")
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setattr(serving, "export", lambda server, base: (_ for _ in ()).throw(
            OSError(28, "No space left on device")))
        with pytest.raises(OSError, match="No space left"):
            train(CONFIG, workdir=str(root / "run"), export_dir=str(root / "export"),
                  verbose=0, examples=0)
    backup = root / "run" / "backup"
    assert (backup / "latest.weights.h5.bkp").exists() and (backup / "random_state.npz.bkp"
                                                            ).exists()
    assert not (root / "export").exists() or not os.listdir(root / "export")
    return {"workdir": root / "run",
            "scored": [line for line in printed.getvalue().splitlines()
                       if line.startswith("test:")]}


def _copy(backup_left, tmp_path):
    """A copy of the run with its backup left: (workdir, export_dir)."""
    shutil.copytree(backup_left["workdir"], tmp_path / "run")
    return tmp_path / "run", tmp_path / "export"


@pytest.mark.parametrize("damaged", ["latest.weights.h5", "training_metadata.json",
                                     "random_state.npz"])
def test_a_damaged_newest_backup_falls_back_to_the_one_before(backup_left, tmp_path, capsys,
                                                               damaged):
    workdir, export_dir = _copy(backup_left, tmp_path)
    backup = workdir / "backup"
    contents = (backup / damaged).read_bytes()
    (backup / damaged).write_bytes(contents[: len(contents) // 3] if damaged.endswith(".h5")
                                   else b"{garbage")
    capsys.readouterr()
    result = train(CONFIG, workdir=str(workdir), export_dir=str(export_dir), verbose=0,
                   examples=0)
    printed = capsys.readouterr().out
    assert f"{backup / damaged} is damaged" in printed
    assert "resuming from the backup before it (epoch 1)" in printed
    # the data where epoch 2 began: 3 steps of 16 images
    assert "resuming at epoch 2: the training stream starts at image 48" in printed
    assert len(result["history"]["loss"]) == 1  # epoch 2 trained again
    assert sorted(os.listdir(export_dir)) == ["1"]


def test_a_backup_damaged_in_both_generations_is_refused_naming_the_file(backup_left,
                                                                         tmp_path):
    workdir, export_dir = _copy(backup_left, tmp_path)
    backup = workdir / "backup"
    for name in ("training_metadata.json", "training_metadata.json.bkp"):
        (backup / name).write_text("not json")
    with pytest.raises(DataError, match=rf"{backup / 'training_metadata.json'} is damaged .* no "
                                        "intact older generation; delete the folder"):
        train(CONFIG, workdir=str(workdir), export_dir=str(export_dir), verbose=0, examples=0)
