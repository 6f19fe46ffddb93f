"""Ctrl-C is a normal way to stop training: a real SIGINT to `tfformer train` prints one
line saying where training stood and what the same command does, exits 130 without a
traceback, and that command then resumes from the backup."""

import os
import re
import signal
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SETTINGS = ["builtin_examples=200", "num_layers=1", "d_model=32", "num_heads=2",
            "intermediate_dim=64", "epochs=2", "steps_per_epoch=500", "batch_size=16",
            "image_size=32", "patch_size=8"]


def _command(workdir, export_dir):
    command = [sys.executable, "-m", "applications.cli", "train", "image_classification",
               "--workdir", str(workdir), "--export-dir", str(export_dir)]
    for setting in SETTINGS:
        command += ["--set", setting]
    return command


def test_ctrl_c_during_training_is_one_line_and_the_same_command_resumes(tmp_path):
    workdir, export_dir = tmp_path / "run", tmp_path / "export"
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    # As from a terminal: a suite started in the background (`pytest &`) hands its children
    # an ignored SIGINT, which Python then never turns into KeyboardInterrupt.
    process = subprocess.Popen(_command(workdir, export_dir), cwd=ROOT, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = []
    for line in process.stdout:  # epoch 1 ends with a backup; interrupt during epoch 2
        seen.append(line)
        if line.startswith("epoch 2/2, step"):
            process.send_signal(signal.SIGINT)
            break
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, "".join(seen) + out + err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    last = err.strip().splitlines()[-1]
    match = re.fullmatch(r"tfformer train: interrupted at epoch 2, step (\d+): run the same "
                         r"command to resume from the backup in (.*) \(it holds epoch 1\)",
                         last)
    assert match, err
    assert match.group(2) == str(workdir / "backup")
    assert not export_dir.exists() or not os.listdir(export_dir)

    resumed = subprocess.run(_command(workdir, export_dir), cwd=ROOT, env=environment,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming at epoch 2: the training stream starts at image 8000" in resumed.stdout
    assert sorted(os.listdir(export_dir)) == ["1"]
