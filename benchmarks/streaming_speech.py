"""Live streaming speech recognition through TF Serving's loading path.

    .venv/bin/python benchmarks/streaming_speech.py
    .venv/bin/python benchmarks/streaming_speech.py --fsdd-workdir runs/benchmark_fsdd

For the `tiny` and `small` presets, and `small` with `window_right=1` (the low-latency
variant), an export of the preset's model (random weights: speed does not depend on them) is
loaded as TF Serving loads it (`tf.compat.v1.saved_model.loader.load`, then `Session.run` on
the `stream_start` / `stream_step` tensors), and the script reports:

- the algorithmic latency: the look-ahead an output waits for (layers x window_right + 1
  subsampled frames of 40 ms, `streaming.context_frames`), plus the chunk;
- compute time per `stream_step` call against the audio the call carries (real-time factor)
  at 80, 320 and 1,000 ms chunks, batch 1 and 32;
- over a 10-minute stream (320 ms chunks, batch 1): the time per call and the resident memory
  in the first and the last minute, which must stay flat.

With `--fsdd-workdir` (a run of `benchmarks/speech_fsdd.py`, and the data set in
../shared/data/fsdd), it exports that run's weights with greedy decoding and also streams FSDD's connected-digit validation strings in 320 ms
chunks and scores them against the whole-clip `waveform` signature (greedy decoding both ways,
since streams decode greedily): the word error rates must be identical.
Writes benchmarks/results/streaming_speech.json.
"""

import argparse
import dataclasses
import json
import os
import tempfile
import time

import numpy as np
import tensorflow as tf
from speed import HERE, matmul_ceiling, memory_kib, write_record

from applications.speech_recognition import data, evaluate, serving
from applications.speech_recognition.config import PRESETS, SpeechRecognitionConfig
from applications.speech_recognition.model import build_recognizer
from applications.speech_recognition.streaming import context_frames

VARIANTS = {"tiny": ("tiny", []), "small": ("small", []),
            "small, window_right=1": ("small", ["window_right"])}
CHUNKS_MS = (80, 320, 1000)
BATCHES = (1, 32)
FSDD = os.path.join(HERE, "..", "..", "shared", "data", "fsdd")


def variant_config(name):
    preset, low_latency = VARIANTS[name]
    config = SpeechRecognitionConfig(**PRESETS[preset])
    return dataclasses.replace(config, window_right=1) if low_latency else config


def export_untrained(config, directory):
    """An export of the config's model with random weights and unit feature statistics."""
    model = build_recognizer(config, vocabulary_size=27)
    features = np.random.default_rng(0).normal(size=(4, 100, config.num_mel_bins))
    model.adapt_normalization(tf.data.Dataset.from_tensor_slices(features.astype("float32"))
                              .batch(2))
    server = serving.SpeechServer(model, list("abcdefghijklmnopqrstuvwxyz'"), config)
    return serving.export(server, directory), model


class SessionStream:
    """An export's streaming signatures through TF Serving's loader."""

    def __init__(self, path):
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(self.session, ["serve"], path)
        self.signatures = meta_graph.signature_def

    def run(self, name, inputs):
        signature = self.signatures[name]
        fetches = {key: info.name for key, info in signature.outputs.items()}
        return self.session.run(fetches, {signature.inputs[key].name: value
                                          for key, value in inputs.items()})

    def start(self, batch, rate):
        return self.run("stream_start", {"sample_rate": np.full([batch], rate, np.int32)})

    def step(self, waveform, final, state):
        outputs = self.run("stream_step", {
            "waveform": waveform, "final": np.full([len(waveform)], final),
            **{key: value for key, value in state.items() if key.startswith("state_")}})
        return outputs["transcript"], outputs

    def transcribe(self, wave, rate, chunk):
        """One clip streamed in chunks of `chunk` samples; its final transcript."""
        state = self.start(1, rate)
        for begin in range(0, len(wave), chunk):
            _, state = self.step(wave[None, begin:begin + chunk], False, state)
        transcript, _ = self.step(np.zeros((1, 0), np.float32), True, state)
        return transcript[0].decode("utf-8")


def time_chunks(stream, rate, chunk_ms, batch, calls=30, warmup=3):
    """Median seconds per stream_step call with `chunk_ms` of audio for `batch` streams."""
    size = rate * chunk_ms // 1000
    audio = (0.1 * np.random.default_rng(1).normal(size=(batch, size))).astype(np.float32)
    state = stream.start(batch, rate)
    timings = []
    for call in range(warmup + calls):
        began = time.perf_counter()
        _, state = stream.step(audio, False, state)
        if call >= warmup:
            timings.append(time.perf_counter() - began)
    return float(np.median(timings))


def ten_minutes(stream, rate, chunk_ms=320, minutes=10):
    """Per-call time and resident memory over a long stream, by minute."""
    size = rate * chunk_ms // 1000
    calls_per_minute = 60_000 // chunk_ms
    rng = np.random.default_rng(2)
    state = stream.start(1, rate)
    minute_times, memory = [], []
    for _ in range(minutes):
        audio = (0.1 * rng.normal(size=(calls_per_minute, 1, size))).astype(np.float32)
        began = time.perf_counter()
        for chunk in audio:
            _, state = stream.step(chunk, False, state)
        minute_times.append((time.perf_counter() - began) / calls_per_minute)
        memory.append(memory_kib()["now"])
    return {"ms_per_call_by_minute": [round(1000 * t, 2) for t in minute_times],
            "resident_mib_by_minute": [round(m / 1024, 1) for m in memory],
            "state_floats": int(sum(np.asarray(v).size for k, v in state.items()
                                    if k.startswith("state_")))}


def fsdd_equality(workdir, chunk_ms=320):
    """WER of streaming and of whole clips on FSDD connected-digit validation strings, both
    through the session path of one greedy export of `workdir`'s exported weights."""
    from applications.common.config import apply_overrides
    from applications.common.restore import restore_weights

    with open(os.path.join(workdir, "config.json")) as handle:
        config = apply_overrides(SpeechRecognitionConfig(**json.load(handle)),
                                 ["beam_size=1", "lexicon_decoding=false"])
    splits = data.load_speech(FSDD, config)
    vocabulary = data.build_vocabulary(splits["train"][1], config.output_units)
    model = build_recognizer(config, len(vocabulary))
    restore_weights(model, workdir, config.export_weights)
    waves, references = splits["val"]
    with tempfile.TemporaryDirectory() as directory:
        stream = SessionStream(serving.export(
            serving.SpeechServer(model, vocabulary, config), directory))
        rate = config.sample_rate
        streamed = [stream.transcribe(w.astype(np.float32), rate, rate * chunk_ms // 1000)
                    for w in waves]
        whole = [stream.run("waveform", {"waveform": w[None].astype(np.float32),
                                         "sample_rate": np.int32(rate)})["transcript"][0]
                 .decode("utf-8") for w in waves]
    return {"clips": len(waves), "chunk_ms": chunk_ms,
            "identical_transcripts": sum(a == b for a, b in zip(streamed, whole)),
            "streamed": evaluate.score(streamed, references),
            "whole_clips_waveform_signature": evaluate.score(whole, references)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--fsdd-workdir", help="the workdir of a speech_fsdd.py run: also "
                        "compare streamed and whole-clip WERs on its validation strings")
    args = parser.parse_args()
    record = {"matmul_gflops_float32": round(matmul_ceiling(tf.float32), 1), "variants": {}}
    for name in args.variants:
        config = variant_config(name)
        with tempfile.TemporaryDirectory() as directory:
            path, model = export_untrained(config, directory)
            _, right = context_frames(model)
            frame_ms = 4 * config.frame_step_ms
            stream = SessionStream(path)
            rate = config.sample_rate
            result = {"look_ahead_ms": right * frame_ms,
                      "algorithmic_latency_ms": {f"{chunk} ms chunks": right * frame_ms + chunk
                                                 for chunk in CHUNKS_MS},
                      "real_time_factor": {}, "ms_per_call": {}}
            for batch in BATCHES:
                for chunk in CHUNKS_MS:
                    seconds = time_chunks(stream, rate, chunk, batch)
                    key = f"batch {batch}, {chunk} ms"
                    result["ms_per_call"][key] = round(1000 * seconds, 2)
                    result["real_time_factor"][key] = round(seconds / (chunk / 1000), 4)
                    print(name, key, result["ms_per_call"][key], "ms per call", flush=True)
            result["long_stream"] = ten_minutes(stream, rate, minutes=args.minutes)
            print(name, result["long_stream"], flush=True)
            record["variants"][name] = result
    if args.fsdd_workdir:
        record["fsdd_connected_digits"] = fsdd_equality(args.fsdd_workdir)
        print(record["fsdd_connected_digits"], flush=True)
    write_record("streaming_speech", record)


if __name__ == "__main__":
    main()
