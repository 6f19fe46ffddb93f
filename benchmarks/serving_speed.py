"""Serving speed through TF Serving's own loading path: load time, first request with and without
the warm-up file, and latency (p50, p99) and throughput at batch 1 and 32.

    .venv/bin/python benchmarks/serving_speed.py
    .venv/bin/python benchmarks/serving_speed.py --translation saved_models/translation/1

Every export is loaded as TF Serving's C++ loader does it: the MetaGraph into a session,
the saver's restore op on `variables/`, the init op (`tf.compat.v1.saved_model.loader.load`),
and then `Session.run` on the signature's tensors. Each measurement of load and first request
runs in a fresh process, twice: once calling the first request right after loading ("cold"),
once after replaying the export's `assets.extra/tf_serving_warmup_requests` as TF Serving does
before it marks a version available ("warm"). The warm process then times each signature at
batch 1 and 32 on raw input only: sentences for translation, PNG bytes for image
classification, WAV bytes for speech recognition. The float32 matmul ceiling is measured in
the same run to show how busy the machine was. Defaults are the exports the README's train
commands leave in saved_models/; an export that is missing is skipped with a note.
"""

import argparse
import gzip
import json
import os
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the tokenizer ops, as TF Serving links them
from speed import HERE, matmul_ceiling, write_record

MULTI30K_VAL = os.path.join(HERE, "..", "..", "shared", "data", "multi30k", "val.en.gz")
DEFAULT_EXPORTS = {name: f"saved_models/{name}"
                   for name in ("translation", "image_classification", "speech_recognition")}
SIGNATURES = {"translation": [("serving_default", "text"), ("greedy", "text")],
              "image_classification": [("serving_default", "image_bytes")],
              "speech_recognition": [("serving_default", "audio_bytes")]}
BATCHES = {1: 40, 32: 8}  # batch size: timed calls


def sentences(count):
    if os.path.exists(MULTI30K_VAL):
        with gzip.open(MULTI30K_VAL, "rt", encoding="utf-8") as handle:
            return [line.strip() for line, _ in zip(handle, range(count))]
    from applications.translation import builtin_data
    return [source for source, _ in builtin_data.generate(count * 4)["train"][:count]]


def png_images(count, size=64):
    from applications.image_classification import builtin_data
    rng = np.random.default_rng(0)
    names = builtin_data.CLASS_NAMES
    return [tf.io.encode_png(builtin_data.render(names[i % len(names)], size, rng)).numpy()
            for i in range(count)]


def wav_clips(count, sample_rate=8000):
    from applications.speech_recognition import builtin_data
    rng = np.random.default_rng(0)
    clips = []
    for i in range(count):
        waveform = builtin_data.render_clip(str(rng.integers(0, 10 ** (1 + i % 3))),
                                            sample_rate, rng)
        clips.append(tf.audio.encode_wav(np.asarray(waveform, np.float32)[:, None],
                                         sample_rate).numpy())
    return clips


RAW_INPUTS = {"translation": sentences, "image_classification": png_images,
              "speech_recognition": wav_clips}


class SessionServer:
    """One SavedModel loaded into a TF1 session, the way TF Serving holds a version."""

    def __init__(self, path):
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            self.meta_graph = tf.compat.v1.saved_model.loader.load(self.session, ["serve"], path)

    def run(self, signature_name, inputs):
        signature = self.meta_graph.signature_def[signature_name]
        feeds = {signature.inputs[name].name: value for name, value in inputs.items()}
        fetches = {name: info.name for name, info in signature.outputs.items()}
        return self.session.run(fetches, feeds)


def warmup_requests(path):
    from tensorflow_serving.apis import prediction_log_pb2
    requests = []
    file = os.path.join(path, "assets.extra", "tf_serving_warmup_requests")
    for record in tf.data.TFRecordDataset(file):
        request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
        requests.append((request.model_spec.signature_name or "serving_default",
                         {name: tf.make_ndarray(p) for name, p in request.inputs.items()}))
    return requests


def time_signature(server, signature, input_name, items, batch, calls):
    def inputs(call):
        return {input_name: np.array([items[(call * batch + i) % len(items)]
                                      for i in range(batch)], dtype=object)}
    for call in range(3):
        server.run(signature, inputs(call))
    latencies = []
    for call in range(calls):
        request = inputs(call)
        started = time.perf_counter()
        server.run(signature, request)
        latencies.append(time.perf_counter() - started)
    latencies = np.array(latencies) * 1000
    return {"p50_ms": round(float(np.percentile(latencies, 50)), 1),
            "p99_ms": round(float(np.percentile(latencies, 99)), 1),
            "items_per_s": round(float(batch * calls / latencies.sum() * 1000), 1), "calls": calls}


def measure(name, path, warm):
    """In this (fresh) process: load, optionally replay the warm-up file, one first request;
    then, when warm, steady-state latencies. Returns a dict of milliseconds."""
    items = RAW_INPUTS[name](64)
    started = time.perf_counter()
    server = SessionServer(path)
    result = {"load_ms": round((time.perf_counter() - started) * 1000, 1)}
    if warm:
        requests = warmup_requests(path)
        started = time.perf_counter()
        for signature, inputs in requests:
            server.run(signature, inputs)
        result["warmup_replay_ms"] = round((time.perf_counter() - started) * 1000, 1)
        result["warmup_requests"] = len(requests)
    signature, input_name = SIGNATURES[name][0]
    started = time.perf_counter()
    server.run(signature, {input_name: np.array(items[:1], dtype=object)})
    result["first_request_ms"] = round((time.perf_counter() - started) * 1000, 1)
    if warm:
        for signature, input_name in SIGNATURES[name]:
            result[signature] = {
                f"batch_{batch}": time_signature(server, signature, input_name, items, batch,
                                                 calls)
                for batch, calls in BATCHES.items()}
    return result


def in_fresh_process(name, path, warm):
    command = [sys.executable, __file__, "--measure", name, path] + (["--warm"] if warm else [])
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
                   "PYTHONPATH": os.path.dirname(HERE)}
    output = subprocess.run(command, capture_output=True, text=True, check=True,
                            env=environment).stdout
    return json.loads(output.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, default in DEFAULT_EXPORTS.items():
        parser.add_argument("--" + name.replace("_", "-"), default=default, dest=name,
                            help="an export base directory or one version of it")
    parser.add_argument("--measure", nargs=2, metavar=("APPLICATION", "PATH"),
                        help=argparse.SUPPRESS)  # the fresh process's entry
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure, warm=args.warm)))
        return
    from tfformer.export import latest_version_dir

    ceiling = matmul_ceiling(tf.float32)
    results, skipped = {}, {}
    for name in DEFAULT_EXPORTS:
        try:
            path = latest_version_dir(getattr(args, name))
        except FileNotFoundError as error:
            skipped[name] = str(error)
            print(f"skipping {name}: {skipped[name]}")
            continue
        cold = in_fresh_process(name, path, warm=False)
        warm = in_fresh_process(name, path, warm=True)
        results[name] = {"export": path, "load_ms": [cold["load_ms"], warm["load_ms"]],
                         "first_request_ms_cold": cold["first_request_ms"],
                         "first_request_ms_after_warmup": warm.pop("first_request_ms"),
                         **{key: value for key, value in warm.items() if key != "load_ms"}}
        print(name, json.dumps(results[name]), flush=True)
    write_record("serving_speed", {
        "command": "python benchmarks/serving_speed.py",
        "matmul_ceiling_gflops_float32": round(ceiling, 1),
        "results": results, "skipped": skipped})


if __name__ == "__main__":
    main()
