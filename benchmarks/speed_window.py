"""Truncated vs full self-attention: training-step time and peak memory against sequence length.

    .venv/bin/python benchmarks/speed_window.py [--lengths 64,128,256,512,1024] [--repeats 5]
        [--policy float32|mixed_bfloat16]

One self-attention layer (d_model 256, 4 heads, batch 8) takes a forward
and backward pass at each length with:
- `full`: full attention (window=None);
- `window_masked`: a (16, 16) window applied as a mask over the full (T, T)
  scores (what the layer does when attention weights are requested);
- `window_banded`: the same window computed block by block (the default
  when no weights are requested), linear in T;
- `projections_only`: the layer's query, key, value and output projections
  alone, which every variant pays: no attention variant can beat it, so
  `full / projections_only` bounds the layer's speed-up, and the attention
  itself is compared with it subtracted (`attention_speedup_banded_over_full`).
Times are interleaved per length (median of the repeats). Peak memory is
the growth of the process's peak resident set during the step, measured in
a fresh subprocess per (variant, length), since a process's peak only grows.
Writes benchmarks/results/speed_window.json (speed_window_mixed_bfloat16.json
with `--policy mixed_bfloat16`, the layer's inputs staying float32 as a
model's first layer gets them).
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf
from speed import interleaved, memory_kib, write_record

from tfformer.layers import MultiHeadAttention

D, HEADS, BATCH, WINDOW = 256, 4, 8, (16, 16)
VARIANTS = ("full", "window_masked", "window_banded", "projections_only")


def step_function(variant, policy="float32"):
    layer = MultiHeadAttention(HEADS, D // HEADS, dtype=policy,
                               window=None if variant == "full" else WINDOW)
    layer.build((None, None, D), (None, None, D))
    with_weights = variant == "window_masked"  # requested weights force the masked path

    def forward(x):
        if variant == "projections_only":
            key, value = layer.project_key_value(x)
            return layer._output_dense(layer._query_dense(x) + key + value)
        out = layer(x, x, return_attention_scores=with_weights, training=True)  # as fit calls it
        return out[0] if with_weights else out

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = forward(x)
            loss = tf.reduce_sum(tf.square(tf.cast(out, tf.float32)))
        return tape.gradient(loss, [x, *layer.trainable_variables])

    return step


def measure_memory(variant, length, policy):
    """Runs in a subprocess: peak resident growth (MiB) of one training step."""
    step = step_function(variant, policy)
    x = tf.random.normal([BATCH, length, D])
    step.get_concrete_function(x)  # trace and build outside the measurement
    before = memory_kib()["now"]
    [g.numpy() for g in step(x)]
    peak = memory_kib()["peak"]
    return max(0, peak - before) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="64,128,256,512,1024")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--policy", default="float32", choices=["float32", "mixed_bfloat16"])
    parser.add_argument("--memory-of", nargs=2, metavar=("VARIANT", "LENGTH"),
                        help=argparse.SUPPRESS)  # internal: one memory measurement
    args = parser.parse_args()
    if args.memory_of:
        print(json.dumps(measure_memory(args.memory_of[0], int(args.memory_of[1]), args.policy)))
        return

    results = {}
    for length in [int(n) for n in args.lengths.split(",")]:
        x = tf.constant(np.random.default_rng(0).normal(size=(BATCH, length, D)), tf.float32)

        def runner(step, x=x):
            def run():
                [g.numpy() for g in step(x)]
                return 1
            return run

        timings = interleaved({v: runner(step_function(v, args.policy)) for v in VARIANTS},
                              repeats=args.repeats)
        entry = {}
        for variant in VARIANTS:
            memory = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--memory-of", variant, str(length),
                 "--policy", args.policy],
                capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            entry[variant] = {"step_ms": round(1000 * timings[variant]["median"], 1),
                              "step_ms_range": [round(1000 * timings[variant]["min"], 1),
                                                round(1000 * timings[variant]["max"], 1)],
                              "peak_memory_growth_mib": round(json.loads(memory), 1)}
        entry["speedup_banded_over_full"] = round(
            timings["full"]["median"] / timings["window_banded"]["median"], 2)
        entry["speedup_banded_over_masked"] = round(
            timings["window_masked"]["median"] / timings["window_banded"]["median"], 2)
        shared = timings["projections_only"]["median"]
        entry["layer_speedup_bound"] = round(timings["full"]["median"] / shared, 2)
        entry["attention_speedup_banded_over_full"] = round(
            (timings["full"]["median"] - shared)
            / max(timings["window_banded"]["median"] - shared, 1e-9), 2)
        results[str(length)] = entry
        print(length, entry, flush=True)
    float32 = args.policy == "float32"
    write_record("speed_window" if float32 else f"speed_window_{args.policy}", {
        "command": "python benchmarks/speed_window.py"
                   + ("" if float32 else f" --policy {args.policy}"),
        "config": {"d_model": D, "heads": HEADS, "batch": BATCH, "window": list(WINDOW),
                   "policy": args.policy},
        "repeats": args.repeats, "results": results,
    })


if __name__ == "__main__":
    main()
