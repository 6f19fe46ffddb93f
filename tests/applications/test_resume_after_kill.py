"""Kill training with SIGKILL mid-epoch and run the same command again: it resumes from the
last backup, sees the same data from there on, and (deterministic ops) ends with exactly the
weights of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SETTINGS = ["builtin_examples=1500", "vocabulary_size=120", "num_layers=1", "d_model=32",
            "num_heads=2", "intermediate_dim=64", "epochs=3", "steps_per_epoch=80",
            "batch_size=32", "max_target_length=24", "max_source_length=16", "beam_size=1"]


def _command(workdir, export_dir):
    command = [sys.executable, "-m", "applications.cli", "train", "translation",
               "--workdir", str(workdir), "--export-dir", str(export_dir), "--deterministic",
               "--strategy", "one_device"]
    for setting in SETTINGS:
        command += ["--set", setting]
    return command


def _environment():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")


def _run(workdir, export_dir):
    result = subprocess.run(_command(workdir, export_dir), cwd=ROOT, env=_environment(),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _weights(export_dir):
    reader = tf.train.load_checkpoint(os.path.join(export_dir, "1", "variables", "variables"))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name.endswith("VARIABLE_VALUE")}  # an export saves only what serving reads


# Release-only (71 s): the default run kills and resumes an image classification run the same
# way (image_classification/test_streaming.py), through the same resume code, and checks the
# translation stream's resumed batches bit for bit (translation/test_streaming.py).
@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    _run(tmp_path / "whole", tmp_path / "whole_export")

    workdir, export_dir = tmp_path / "killed", tmp_path / "killed_export"
    process = subprocess.Popen(_command(workdir, export_dir), cwd=ROOT, env=_environment(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in process.stdout:  # epoch 1 ends with a backup; kill during epoch 2
        seen.append(line)
        if line.startswith("Epoch 2/3"):
            time.sleep(0.5)
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "".join(seen)[-3000:]
    assert not export_dir.exists() or not os.listdir(export_dir)

    output = _run(workdir, export_dir)
    assert "resuming at epoch 2" in output and "reusing the tokenizer" in output
    assert "Epoch 1/3" not in output
    whole, resumed = _weights(tmp_path / "whole_export"), _weights(export_dir)
    assert whole.keys() == resumed.keys() and whole
    for name in whole:
        np.testing.assert_array_equal(resumed[name], whole[name], err_msg=name)
