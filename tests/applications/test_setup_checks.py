"""Bad setups fail before training, naming the problem: a backup written with another config,
`--resume` with nothing to resume, a broken TF_CONFIG, a batch that doesn't split over the
replicas."""

import dataclasses
import json
import os
import types

import pytest

from applications.common import cli
from applications.common.config import ConfigError, from_preset, to_json
from applications.common.distributed import check_resume, run_training
from applications.common.strategy import check_tf_config
from applications.translation.config import PRESETS, TranslationConfig

CONFIG = from_preset(TranslationConfig, PRESETS, "tiny")


def _workdir_with_backup(tmp_path, config):
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "training_metadata.json").write_text(json.dumps({"epoch": 2}))
    (tmp_path / "config.json").write_text(to_json(config))
    return str(backup)


def test_a_backup_of_another_config_is_refused_naming_the_change(tmp_path):
    backup = _workdir_with_backup(tmp_path, CONFIG)
    check_resume(str(tmp_path), backup, CONFIG)  # same config: resumes
    changed = dataclasses.replace(CONFIG, epochs=CONFIG.epochs + 3, seed=5)
    with pytest.raises(ConfigError, match=rf"different config \(epochs: {CONFIG.epochs} -> "
                                          rf"{CONFIG.epochs + 3}; seed: 0 -> 5\)"):
        check_resume(str(tmp_path), backup, changed)


def test_resume_requires_a_backup(tmp_path):
    check_resume(str(tmp_path), str(tmp_path / "backup"), CONFIG)  # auto: starts afresh
    with pytest.raises(ConfigError, match="no backup to resume"):
        check_resume(str(tmp_path), str(tmp_path / "backup"), CONFIG, resume="require")


def test_cli_reports_the_refusal_before_training(tmp_path, capsys):
    _workdir_with_backup(tmp_path, CONFIG)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "translation", "--preset", "tiny", "--workdir", str(tmp_path),
                  "--export-dir", str(tmp_path / "export"), "--set", "epochs=7"])
    assert exit_info.value.code == 2
    assert "different config (epochs:" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "export")
    with pytest.raises(SystemExit):
        cli.main(["train", "translation", "--preset", "tiny", "--workdir",
                  str(tmp_path / "fresh"), "--resume"])
    assert "no backup to resume" in capsys.readouterr().err


@pytest.mark.parametrize("tf_config, message", [
    (None, "needs the TF_CONFIG environment variable"),
    ("{cluster", "not valid JSON"),
    ('{"task": {"type": "worker", "index": 0}}', "no cluster with workers"),
    ('{"cluster": {"worker": ["a:1"]}}', "no task"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
     "is not in its cluster"),
])
def test_bad_tf_config_is_named_before_any_strategy_starts(tf_config, message):
    with pytest.raises(ValueError, match=message):
        check_tf_config(tf_config)
    check_tf_config('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", '
                    '"index": 1}}')


def test_a_global_batch_that_does_not_split_over_the_replicas_is_refused(tmp_path):
    strategy = types.SimpleNamespace(num_replicas_in_sync=3)
    with pytest.raises(ConfigError, match="batch_size=32 does not split evenly over 3"):
        run_training(None, dataclasses.replace(CONFIG, batch_size=32), None, str(tmp_path),
                     str(tmp_path / "export"), strategy)
