"""Shared tools for the speed benchmarks: interleaved timing, the matmul ceiling, records.

This machine is shared and noisy, so every figure is a ratio against a
baseline timed in the same run: candidates run in turn (A B C A B C ...)
after a warm-up, and each reports the median and spread of its repeats.
"""

import json
import os
import platform
import statistics
import subprocess
import time

import keras
import tensorflow as tf

HERE = os.path.dirname(os.path.abspath(__file__))


def interleaved(candidates, repeats=5, warmup=1):
    """{name: fn() -> work done} -> {name: {"median", "min", "max"} seconds per unit of work}.

    Each `fn` runs a fixed amount of work and returns how many units it did
    (steps, tokens...). All candidates warm up first, then take turns.
    """
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    seconds = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            started = time.perf_counter()
            units = fn()
            seconds[name].append((time.perf_counter() - started) / units)
    return {name: {"median": statistics.median(values), "min": min(values), "max": max(values)}
            for name, values in seconds.items()}


def matmul_ceiling(dtype, size=2048, repeats=5):
    """GFLOP/s of chained (size x size) @ (size x size) matmuls in `dtype`, median of repeats.

    Chained so that graph optimisation cannot merge identical products.
    """
    x = tf.cast(tf.random.normal([size, size]), dtype)
    b = tf.cast(tf.random.normal([size, size], stddev=size**-0.5), dtype)  # keeps |x| steady

    @tf.function
    def ten_matmuls(x, b):
        for _ in range(10):
            x = tf.matmul(x, b)
        return x[0, 0]

    def run():
        ten_matmuls(x, b).numpy()
        return 10

    timing = interleaved({"matmul": run}, repeats=repeats)["matmul"]
    return 2 * size**3 / timing["median"] / 1e9


def memory_kib():
    """This process's peak (VmHWM) and current (VmRSS) resident memory in KiB; Linux only."""
    with open("/proc/self/status") as handle:
        fields = dict(line.split(":", 1) for line in handle)
    return {"peak": int(fields["VmHWM"].split()[0]), "now": int(fields["VmRSS"].split()[0])}


def environment():
    return {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "tensorflow": tf.__version__, "keras": keras.__version__,
            "python": platform.python_version()}


def import_and_export(import_checkpoint, load, checkpoint, root):
    """Imports `checkpoint` into root/run and exports it to root/export, timed: the export's
    path and {"import_s", "export_s", "checkpoint_mb", "export_mb"}."""
    started = time.perf_counter()
    import_checkpoint(checkpoint, os.path.join(root, "run"))
    import_s = time.perf_counter() - started
    started = time.perf_counter()
    path = load(os.path.join(root, "run")).export(os.path.join(root, "export"))
    export_s = time.perf_counter() - started
    return path, {"checkpoint_mb": directory_mb(checkpoint), "import_s": round(import_s, 1),
                  "export_s": round(export_s, 1), "export_mb": directory_mb(path)}


def run_engines(script, python, root):
    """The JSON line that `script` (beside this file) prints when `python` (another venv,
    with the engines) runs it on `root`."""
    path = os.path.join(HERE, script)
    output = subprocess.run([python, path, root], capture_output=True, text=True,
                            check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def directory_mb(path):
    """The size of everything under `path`, in MiB."""
    return round(sum(os.path.getsize(os.path.join(root, name))
                     for root, _, names in os.walk(path) for name in names) / 2**20, 1)


def write_record(name, record):
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    record = {"benchmark": name, **environment(), **record}
    with open(os.path.join(HERE, "results", name + ".json"), "w") as handle:
        json.dump(record, handle, indent=2)
    print(json.dumps(record, indent=2))
