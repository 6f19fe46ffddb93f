"""Bad setups fail before training, naming the problem: a backup written with another config,
`--resume` with nothing to resume, a broken TF_CONFIG, a batch that doesn't split over the
replicas, fp16 on a device without float16 compute."""

import dataclasses
import json
import os
import types

import pytest
import tensorflow as tf

from applications import cli
from applications.common.config import ConfigError, from_preset, to_json
from applications.common.precision import check_mixed_precision, fp16_problem
from applications.common.resume import check_resume
from applications.common.strategy import check_tf_config
from applications.common.training_run import run_training
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


def test_fp16_is_refused_where_the_device_cannot_compute_it():
    assert "bfloat16" in fp16_problem("TPU")
    assert "compute capability 6.1" in fp16_problem("GPU", (6, 1))
    assert fp16_problem("GPU", (7, 0)) is None and fp16_problem("GPU", (9, 0)) is None
    assert fp16_problem("CPU") is None  # exact but slow kernels; tests use them
    check_mixed_precision("fp16", tf.distribute.get_strategy())


def test_fp16_on_a_pre_volta_gpu_fails_before_training(tmp_path, monkeypatch):
    gpu = types.SimpleNamespace(name="/physical_device:GPU:0", device_type="GPU")
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: [gpu] if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "get_device_details",
                        lambda device: {"compute_capability": (6, 0), "device_name": "P100"})
    strategy = types.SimpleNamespace(
        num_replicas_in_sync=1, extended=types.SimpleNamespace(
            worker_devices=("/job:localhost/replica:0/task:0/device:GPU:0",)))
    check_mixed_precision("bf16", strategy)  # only fp16 is checked
    with pytest.raises(ValueError, match="fp16: this GPU .compute capability 6.0"):
        run_training(None, CONFIG, None, str(tmp_path), str(tmp_path / "export"), strategy,
                     mixed_precision="fp16")
