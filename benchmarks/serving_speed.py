"""Serving speed: latency (p50, p99) and throughput of the exported SavedModels on raw input.

    .venv/bin/python benchmarks/serving_speed.py
    .venv/bin/python benchmarks/serving_speed.py --translation saved_models/translation/1

Loads each export with `tf.saved_model.load`, as TF Serving would, and calls
its signatures on raw input only: sentences (strings) for translation, PNG
bytes for image classification, WAV bytes for speech recognition. Each
signature is timed at batch 1 and batch 32 after a warm-up; latency is per
call, throughput is items per second at that batch. The float32 matmul
ceiling is measured in the same run to show how busy the machine was.
Defaults are the exports that the quality benchmarks leave in runs/; an
export that is missing is skipped with a note. Inputs are Multi30k val
sentences when `../shared/data/multi30k` is on disk (else the built-in
sentences), built-in shapes as 64x64 PNGs, and built-in 1-3 digit tone clips
as 8 kHz WAV.
"""

import argparse
import gzip
import os
import time

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the tokenizer ops, as TF Serving links them
from speed import HERE, matmul_ceiling, write_record

from applications.image_classification import builtin_data as image_data
from applications.speech_recognition import builtin_data as speech_data
from applications.translation import builtin_data as translation_data
from tfformer.export import latest_version_dir

MULTI30K_VAL = os.path.join(HERE, "..", "..", "shared", "data", "multi30k", "val.en.gz")
DEFAULT_EXPORTS = {
    "translation": "runs/benchmark_multi30k/export",
    "image_classification": "runs/benchmark_fashion_mnist_4x4/export",
    "speech_recognition": "runs/benchmark_fsdd/export",
}
SIGNATURES = {"translation": ["serving_default", "greedy"],
              "image_classification": ["serving_default"],
              "speech_recognition": ["serving_default"]}
BATCHES = {1: 40, 32: 8}  # batch size: timed calls


def sentences(count):
    if os.path.exists(MULTI30K_VAL):
        with gzip.open(MULTI30K_VAL, "rt", encoding="utf-8") as handle:
            return [line.strip() for line, _ in zip(handle, range(count))]
    return [source for source, _ in translation_data.generate(count * 4)["train"][:count]]


def png_images(count, size=64):
    rng = np.random.default_rng(0)
    names = image_data.CLASS_NAMES
    return [tf.io.encode_png(image_data.render(names[i % len(names)], size, rng)).numpy()
            for i in range(count)]


def wav_clips(count, sample_rate=8000):
    rng = np.random.default_rng(0)
    clips = []
    for i in range(count):
        waveform = speech_data.render_clip(str(rng.integers(0, 10 ** (1 + i % 3))),
                                           sample_rate, rng)
        clips.append(tf.audio.encode_wav(np.asarray(waveform, np.float32)[:, None],
                                         sample_rate).numpy())
    return clips


RAW_INPUTS = {"translation": sentences, "image_classification": png_images,
              "speech_recognition": wav_clips}


def time_signature(signature, items, batch, calls):
    argument = next(iter(signature.structured_input_signature[1]))
    inputs = tf.constant([items[i % len(items)] for i in range(batch)])
    for _ in range(3):
        signature(**{argument: inputs})
    latencies = []
    for call in range(calls):
        inputs = tf.constant([items[(call * batch + i) % len(items)] for i in range(batch)])
        started = time.perf_counter()
        signature(**{argument: inputs})
        latencies.append(time.perf_counter() - started)
    latencies = np.array(latencies) * 1000
    return {"p50_ms": round(float(np.percentile(latencies, 50)), 1),
            "p99_ms": round(float(np.percentile(latencies, 99)), 1),
            "items_per_s": round(float(batch * calls / latencies.sum() * 1000), 1), "calls": calls}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, default in DEFAULT_EXPORTS.items():
        parser.add_argument("--" + name.replace("_", "-"), default=default, dest=name,
                            help="an export base directory or one version of it")
    args = parser.parse_args()
    ceiling = matmul_ceiling(tf.float32)
    results, skipped = {}, {}
    for name in DEFAULT_EXPORTS:
        try:
            path = latest_version_dir(getattr(args, name))
        except FileNotFoundError as error:
            skipped[name] = str(error)
            print(f"skipping {name}: {skipped[name]}")
            continue
        loaded = tf.saved_model.load(path)
        items = RAW_INPUTS[name](64)
        results[name] = {"export": path}
        for signature_name in SIGNATURES[name]:
            signature = loaded.signatures[signature_name]
            results[name][signature_name] = {
                f"batch_{batch}": time_signature(signature, items, batch, calls)
                for batch, calls in BATCHES.items()}
            print(name, signature_name, results[name][signature_name], flush=True)
    write_record("serving_speed", {
        "command": "python benchmarks/serving_speed.py",
        "matmul_ceiling_gflops_float32": round(ceiling, 1),
        "results": results, "skipped": skipped})


if __name__ == "__main__":
    main()
