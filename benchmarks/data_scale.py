"""Data-scale benchmark: memory and time to the first step as the data set grows tenfold.

    .venv/bin/python benchmarks/data_scale.py image_classification \\
        [--sizes 5000,50000,500000] [--root /tmp/tfformer_data_scale] [--baseline DIR]

For each size it writes a synthetic data set once (image classification: class folders of
128x128 JPEGs of the built-in shapes, drawn from a pool of rendered images so that writing
half a million files takes minutes), then measures, each in a fresh process, at the `small`
preset:

- peak resident memory of the training process;
- seconds from the start of the process to the end of the first training step (listing,
  pipeline, model, tracing);
- the input pipeline's throughput with the model removed, against the training step rate,
  both in images per second: the pipeline must keep up on 2 cores.

`--baseline DIR` measures the same with the code checked out in DIR (a `git worktree` of a
commit before streaming, e.g. 1bf6ae9), whose loader decodes every image into memory first;
sizes whose decoded images would not fit in the free memory are reported, not run. Results go
to benchmarks/results/data_scale_<application>.json.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

STARTED = time.time()
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FILE_SIZE = 128  # pixels a side of the generated JPEGs


def generate_images(directory, count, seed=0, pool_size=600):
    """`count` JPEGs in class folders (a pool of rendered shapes, written again and again)."""
    import numpy as np
    import tensorflow as tf

    from applications.image_classification import builtin_data

    if os.path.isfile(os.path.join(directory, "done")):
        return
    rng = np.random.default_rng(seed)
    classes = builtin_data.CLASS_NAMES
    pool = []
    for index in range(pool_size):
        image = builtin_data.render(classes[index % len(classes)], FILE_SIZE, rng)
        pool.append(tf.io.encode_jpeg(image, quality=90).numpy())
    for name in classes:
        os.makedirs(os.path.join(directory, name), exist_ok=True)
    for number in range(count):
        index = int(rng.integers(pool_size))
        path = os.path.join(directory, classes[index % len(classes)], f"{number:07d}.jpg")
        with open(path, "wb") as handle:
            handle.write(pool[index])
    with open(os.path.join(directory, "done"), "w") as handle:
        handle.write(str(count))


def measure_images(data_dir, steps=30, pipeline_batches=100):
    """One measurement in this process: {peak_rss_mb, seconds_to_first_step, ...}."""
    import keras

    from applications.common.config import from_preset
    from applications.image_classification import data
    from applications.image_classification.config import PRESETS, ImageClassificationConfig
    from applications.image_classification.model import build_vit

    config = from_preset(ImageClassificationConfig, PRESETS, "small")
    keras.utils.set_random_seed(0)
    if hasattr(data, "list_images"):  # streaming
        splits, names = data.list_images(data_dir, config)
        train = data.training_batches(splits["train"], config, len(names))
        count = splits["train"].count
    else:  # the loader before streaming: every image decoded into memory
        splits, names = data.load_images(data_dir, config)
        train = data.make_dataset(*splits["train"], config, True, len(names))
        count = len(splits["train"][1])
    model = build_vit(config, len(names))
    model.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    model.fit(train, steps_per_epoch=1, epochs=1, verbose=0)
    first_step = time.time() - STARTED
    started = time.time()
    model.fit(train, steps_per_epoch=steps, epochs=1, verbose=0)
    training = steps * config.batch_size / (time.time() - started)
    batches = iter(train)
    for _ in range(5):
        next(batches)
    started = time.time()
    for _ in range(pipeline_batches):
        next(batches)
    pipeline = pipeline_batches * config.batch_size / (time.time() - started)
    return {"training_images": count, "seconds_to_first_step": round(first_step, 1),
            "pipeline_images_per_s": round(pipeline), "training_images_per_s": round(training),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def _free_memory_bytes():
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def _measure_in_subprocess(data_dir, code_dir):
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=code_dir)
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--measure", data_dir],
        cwd=code_dir, env=environment, capture_output=True, text=True)
    if result.returncode:
        return {"error": (result.stdout + result.stderr).strip().splitlines()[-1][:300]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("application", nargs="?", choices=["image_classification"])
    parser.add_argument("--sizes", default="5000,50000,500000")
    parser.add_argument("--root", default="/tmp/tfformer_data_scale")
    parser.add_argument("--baseline", help="a checkout of the code before streaming")
    parser.add_argument("--measure", metavar="DATA_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure_images(args.measure)))
        return
    records = []
    for size in [int(s) for s in args.sizes.split(",")]:
        directory = os.path.join(args.root, f"images_{size}")
        started = time.time()
        generate_images(directory, size)
        record = {"images": size, "generated_in_s": round(time.time() - started),
                  "streaming": _measure_in_subprocess(directory, ROOT)}
        if args.baseline:
            needed = size * 32 * 32 * 3 * 3  # uint8 images, twice over while stacked, + labels
            if needed > _free_memory_bytes():
                record["in_memory"] = {"not run": f"needs about {needed / 2**30:.1f} GiB"}
            else:
                record["in_memory"] = _measure_in_subprocess(directory,
                                                             os.path.abspath(args.baseline))
        print(json.dumps(record), flush=True)
        records.append(record)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", "data_scale_image_classification.json")
    earlier = {}
    if os.path.exists(path):  # sizes measured in another run are kept
        with open(path) as handle:
            earlier = {r["images"]: r for r in json.load(handle)["sizes"]}
    earlier.update({r["images"]: r for r in records})
    with open(path, "w") as handle:
        json.dump({"benchmark": "data_scale", "application": "image_classification",
                   "preset": "small", "file_size": FILE_SIZE,
                   "sizes": [earlier[size] for size in sorted(earlier)]}, handle, indent=1)


if __name__ == "__main__":
    main()
