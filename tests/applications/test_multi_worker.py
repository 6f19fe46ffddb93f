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


def _run_two_workers(module, arguments, timeout):
    """Runs `python -m module *arguments(index)` as workers 0 and 1 of a localhost TF_CONFIG
    cluster; returns their outputs once both exited 0."""
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_CONFIG=json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(
            [sys.executable, "-m", module, *arguments(index)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [process.communicate(timeout=timeout)[0] for process in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-4000:]
    return outputs


def test_two_workers_train_in_sync_and_only_the_chief_exports(tmp_path):
    workdir, export_dir = tmp_path / "run", tmp_path / "export"
    outputs = _run_two_workers(
        "tests.support.multi_worker_train",
        lambda index: [str(workdir), str(export_dir), str(tmp_path / f"worker{index}.npz")],
        timeout=600)
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


def _read_by_two_workers(tmp_path, module, data_dirs, *leading):
    """Both workers of one cluster read each of `data_dirs` (layout: directory) in turn;
    returns, per layout, the cluster's output and each worker's numbers."""
    def arguments(index):
        pairs = [[str(directory), str(tmp_path / f"{layout}_worker{index}.npy")]
                 for layout, directory in data_dirs.items()]
        return [*leading, *sum(pairs, [])]

    outputs = _run_two_workers(module, arguments, timeout=300)
    return outputs, {layout: [np.load(tmp_path / f"{layout}_worker{index}.npy")
                              for index in range(2)] for layout in data_dirs}


def _assert_disjoint_shares(outputs, numbers, share, expected):
    """For each layout: the first read by example, the second by file; each worker got
    `share` numbers, none that the other got, and together exactly `expected`."""
    for output in outputs:
        assert output.index("sharded by example") < output.index("sharded by file")
    for layout, (first, second) in numbers.items():
        assert len(first) == len(second) == share, layout
        assert not set(first) & set(second), layout
        together = sorted(np.concatenate([first, second]).tolist())
        assert together == sorted(expected), layout


def test_two_workers_read_every_training_image_once_a_pass(tmp_path):
    """44 numbered images, 4 held out: a pass of 40 is 5 steps of 8 (4 from each worker);
    together the workers' replicas get every training image exactly once. An image folder
    is split by example, 4 prepared shards by file."""
    import tensorflow as tf

    from applications import cli

    for number in range(44):
        folder = tmp_path / "data" / ("odd" if number % 2 else "even")
        folder.mkdir(parents=True, exist_ok=True)
        pixels = np.zeros((16, 16, 3), np.uint8)
        pixels[0, 0, 0] = number + 1
        (folder / f"{number:02d}.png").write_bytes(tf.io.encode_png(pixels).numpy())
    assert cli.main(["prepare", "image_classification", "--data", str(tmp_path / "data"),
                     "--output", str(tmp_path / "prepared"), "--shards", "4"]) == 0
    outputs, numbers = _read_by_two_workers(
        tmp_path, "tests.support.multi_worker_images",
        {"folder": tmp_path / "data", "prepared": tmp_path / "prepared"})
    held_out = {10, 21, 32, 43}  # val: every eleventh of the 44 listed (sorted by class)
    listed = [n + 1 for n in sorted(range(44), key=lambda n: (n % 2, n))]
    _assert_disjoint_shares(outputs, numbers, share=20,
                            expected=[v for i, v in enumerate(listed) if i not in held_out])


def test_two_workers_read_every_training_pair_once_a_pass(tmp_path):
    """65 numbered pairs, the last held out: 64 to train, 32 for each worker (by example
    from text files, by file from 4 prepared shards of 16). A worker takes 2 pairs a step,
    so 32 steps are two passes over its share, one length-sorted pool of 16 batches of 4:
    together the replicas get every training pair exactly twice."""
    from applications import cli

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.en").write_text(
        "".join(f"n{n} " + "the cat " * (n % 4) + "\n" for n in range(65)))
    (tmp_path / "data" / "train.de").write_text(
        "".join(f"z{n} " + "die Katze " * (n % 3) + "\n" for n in range(65)))
    assert cli.main(["prepare", "translation", "--data", str(tmp_path / "data"),
                     "--output", str(tmp_path / "prepared"), "--shards", "4"]) == 0
    outputs, numbers = _read_by_two_workers(
        tmp_path, "tests.support.multi_worker_text",
        {"text": tmp_path / "data", "prepared": tmp_path / "prepared"}, "32")
    _assert_disjoint_shares(outputs, numbers, share=64, expected=list(range(64)) * 2)
