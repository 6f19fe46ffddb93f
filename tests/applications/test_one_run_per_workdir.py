"""A run directory never mixes runs: a rerun with another config (or of a finished run) is
refused before training, naming what differs and the ways out, and every way out it names
works when followed: `--fresh` sets the old run aside and exports only the new run's
weights; `tfformer export` exports the finished run. A damaged best-weights file and a
failing export are named in one line, with the advice they give tested too."""

import contextlib
import io
import json
import os
import shutil

import pytest
import tensorflow as tf

from applications import cli
from applications.common.run_directory import SET_ASIDE
from applications.image_classification import serving

SMALL = ["--set", "builtin_examples=200", "--set", "num_layers=1", "--set", "d_model=32",
         "--set", "num_heads=2", "--set", "intermediate_dim=64", "--set", "epochs=2",
         "--set", "steps_per_epoch=3", "--set", "batch_size=16", "--set", "image_size=32",
         "--set", "patch_size=8"]


def _train(workdir, export_dir, *extra):
    return cli.main(["train", "image_classification", "--workdir", str(workdir),
                     "--export-dir", str(export_dir), *SMALL, *extra])


def _refusal(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        _train(*args)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def _encoder_layers(export):
    """The number of encoder blocks whose weights an export holds."""
    names = [name for name, _ in tf.train.list_variables(str(export / "variables" / "variables"))]
    return len({name.split(".S")[2] for name in names if ".Sencoder.Slayer_" in name})


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished two-epoch run and its export."""
    root = tmp_path_factory.mktemp("one_run")
    assert _train(root / "run", root / "export") == 0
    return root


def test_a_finished_run_rerun_with_another_config_is_refused_and_fresh_sets_it_aside(
        finished, tmp_path, capsys):
    workdir = tmp_path / "run"
    shutil.copytree(finished / "run", workdir)
    before = (workdir / "checkpoints" / "best.json").read_text()
    capsys.readouterr()
    message = _refusal(capsys, workdir, tmp_path / "export", "--set", "num_layers=2",
                       "--set", "epochs=1")
    assert "a run with a different config (epochs: 2 -> 1; num_layers: 1 -> 2)" in message
    assert "--fresh" in message and "choose another --workdir" in message
    assert not (tmp_path / "export").exists()  # refused before anything was trained

    # The advice, followed: the earlier run is set aside whole, the new one exports its own.
    assert _train(workdir, tmp_path / "export", "--set", "num_layers=2", "--set", "epochs=1",
                  "--fresh") == 0
    printed = capsys.readouterr().out
    (aside,) = (workdir / SET_ASIDE).iterdir()
    assert (aside / "checkpoints" / "best.json").read_text() == before
    assert json.loads((aside / "config.json").read_text())["num_layers"] == 1
    assert json.loads((workdir / "checkpoints" / "best.json").read_text())["epoch"] == 1
    assert "exporting the weights of epoch 1" in printed
    assert _encoder_layers(tmp_path / "export" / "1") == 2


def test_a_finished_run_rerun_as_it_was_points_to_export_and_the_advice_works(
        finished, tmp_path, capsys):
    capsys.readouterr()
    message = _refusal(capsys, finished / "run", tmp_path / "export")
    command = f"tfformer export image_classification --workdir {finished / 'run'}"
    assert f"holds a finished run of this config; export it again with `{command}`" in message
    assert cli.main(command.split()[1:] + ["--export-dir", str(tmp_path / "export")]) == 0
    assert sorted(os.listdir(tmp_path / "export")) == ["1"]


@pytest.fixture(scope="module")
def failed_export(tmp_path_factory):
    """A run that trained and then could not write its export (permission denied), so its
    backup stays: the exit code and what it printed on standard error. Tests work on copies."""
    root = tmp_path_factory.mktemp("failed_export")
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(printed):
        patch.setattr(serving, "export", lambda server, base: (_ for _ in ()).throw(
            PermissionError(13, "Permission denied", str(base))))
        with pytest.raises(SystemExit) as exit_info:
            _train(root / "run", root / "export")
    return {"root": root, "code": exit_info.value.code, "err": printed.getvalue()}


def _copy_of(failed_export, tmp_path):
    shutil.copytree(failed_export["root"] / "run", tmp_path / "run")
    return tmp_path / "run", tmp_path / "export"


def test_a_deleted_backup_does_not_let_a_changed_config_train_beside_old_weights(
        failed_export, tmp_path, capsys):
    """A changed config with a backup is refused (advising --fresh); deleting the backup
    instead is refused before training too: the old run's best weights would be exported."""
    workdir, export_dir = _copy_of(failed_export, tmp_path)
    assert (workdir / "backup" / "training_metadata.json").exists()
    capsys.readouterr()
    message = _refusal(capsys, workdir, export_dir, "--set", "d_model=48")
    assert "holds a backup of a run with a different config (d_model: 32 -> 48)" in message
    assert "--fresh" in message and "or delete" not in message

    shutil.rmtree(workdir / "backup")
    message = _refusal(capsys, workdir, export_dir, "--set", "d_model=48")
    assert "a run with a different config (d_model: 32 -> 48)" in message
    assert _train(workdir, export_dir, "--set", "d_model=48", "--fresh") == 0
    assert sorted(os.listdir(export_dir)) == ["1"]


def test_a_failed_export_is_one_line_naming_the_directory_and_the_same_command_exports(
        failed_export, tmp_path, capsys):
    assert failed_export["code"] == 1
    (line,) = failed_export["err"].strip().splitlines()
    root = failed_export["root"]
    assert line.startswith(f"tfformer train: error: exporting to {root / 'export'} failed "
                           "([Errno 13] Permission denied")
    assert f"the trained run is kept in {root / 'run' / 'backup'}" in line
    workdir, export_dir = _copy_of(failed_export, tmp_path)
    assert _train(workdir, export_dir) == 0  # the advice: the same command exports
    assert "the backup holds all 2 epochs: nothing left to train" in capsys.readouterr().out
    assert sorted(os.listdir(export_dir)) == ["1"]


def test_a_damaged_best_weights_file_is_named_and_weights_last_exports(finished, tmp_path,
                                                                       capsys):
    workdir = tmp_path / "run"
    shutil.copytree(finished / "run", workdir)
    best = workdir / "checkpoints" / "best.weights.h5"
    best.write_bytes(best.read_bytes()[: best.stat().st_size // 3])
    export = ["export", "image_classification", "--workdir", str(workdir), "--export-dir",
              str(tmp_path / "export")]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(export)
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"{best} is damaged (" in line and "with --weights last" in line
    assert cli.main([*export, "--weights", "last"]) == 0
    assert sorted(os.listdir(tmp_path / "export")) == ["1"]
