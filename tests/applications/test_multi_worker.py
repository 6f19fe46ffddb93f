"""Two worker processes on localhost under MultiWorkerMirroredStrategy (a real TF_CONFIG
cluster) train the translator, agree on the final weights and produce one export."""

import json
import os
import socket
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_train_in_sync_and_only_the_chief_exports(tmp_path):
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    workdir, export_dir = tmp_path / "run", tmp_path / "export"
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_CONFIG=json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "tests.support.multi_worker_train", str(workdir),
             str(export_dir), str(tmp_path / f"worker{index}.npz")],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-4000:]
    chief, worker = (np.load(tmp_path / f"worker{index}.npz") for index in range(2))
    weights = [name for name in chief.files if name.startswith("arr_")]
    assert weights and len(weights) == len([n for n in worker.files if n.startswith("arr_")])
    for name in weights:
        np.testing.assert_array_equal(chief[name], worker[name])
    np.testing.assert_array_equal(chief["translations"], worker["translations"])
    np.testing.assert_array_equal(chief["loss"], worker["loss"])
    assert len(chief["val_loss"]) == 2 and np.all(np.isfinite(chief["val_loss"]))
    # One export, one set of logs and checkpoints (the chief's); a backup per worker.
    assert sorted(os.listdir(export_dir)) == ["1"]
    assert (workdir / "checkpoints" / "best.weights.h5").exists()
    assert any((workdir / "logs").rglob("*tfevents*"))
    assert "Epoch 2/2" in outputs[0]
