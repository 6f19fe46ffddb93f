"""Why validation data reads without tf.data's autotuner: deleting an idle iterator can stall.

    .venv/bin/python benchmarks/iterator_stall.py [--iterators 8] [--idle 50]

Keras makes a new iterator over the validation data every epoch and deletes
the last one first, after it sat idle through an epoch of training. Deleting
an iterator joins its autotuning thread, which on TF 2.21 sometimes waits
about 30 s with the CPU idle. This script reads a small validation-like
pipeline (parallel map, spectrogram, batch, prefetch) to its end with several
iterators, leaves them idle, then times deleting each one: with tf.data's
default options and through `example_stream.for_evaluation` (autotuner off),
which the applications' validation data uses. Writes
benchmarks/results/iterator_stall.json. If a TensorFlow release stops
stalling, `for_evaluation` can keep the autotuner.
"""

import argparse
import gc
import json
import os
import time

import tensorflow as tf

from applications.common import example_stream

HERE = os.path.dirname(os.path.abspath(__file__))


def validation_like():
    """300 one-second clips -> batches of spectrograms, every stage AUTOTUNE."""
    clips = tf.data.Dataset.range(300).map(
        lambda i: tf.sin(tf.cast(i + 1, tf.float32) * tf.linspace(0.0, 100.0, 8000)),
        num_parallel_calls=tf.data.AUTOTUNE)
    frames = clips.map(lambda wave: tf.abs(tf.signal.stft(wave, 200, 80)),
                       num_parallel_calls=tf.data.AUTOTUNE)
    return frames.batch(32).prefetch(tf.data.AUTOTUNE)


def deletion_seconds(dataset, iterators, idle):
    """Seconds to delete each of `iterators` iterators read to the end, after `idle` s."""
    kept = []
    for _ in range(iterators):
        iterator = iter(dataset)
        for _ in iterator:
            pass
        kept.append(iterator)
    time.sleep(idle)
    seconds = []
    while kept:
        iterator = kept.pop(0)
        started = time.perf_counter()
        del iterator
        gc.collect()
        seconds.append(round(time.perf_counter() - started, 2))
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterators", type=int, default=8)
    parser.add_argument("--idle", type=float, default=50.0,
                        help="seconds the read iterators sit idle (an epoch of training)")
    args = parser.parse_args()
    record = {"benchmark": "iterator_stall", "tensorflow": tf.__version__,
              "iterators": args.iterators, "idle_seconds": args.idle}
    for name, dataset in (("default_options", validation_like()),
                          ("for_evaluation", example_stream.for_evaluation(validation_like()))):
        seconds = deletion_seconds(dataset, args.iterators, args.idle)
        record[name] = {"delete_seconds": seconds, "max": max(seconds),
                        "over_5_s": sum(s > 5 for s in seconds)}
        print(f"{name}: deleting took {seconds} s", flush=True)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "iterator_stall.json"), "w") as handle:
        json.dump(record, handle, indent=2)


if __name__ == "__main__":
    main()
