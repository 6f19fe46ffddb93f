"""Where a training step's time goes: a TF profiler trace, summed by op type.

    .venv/bin/python benchmarks/profile_training.py [--policy mixed_bfloat16] [--steps 5]
        [--model tfformer|keras_hub]

Traces a few `train_on_batch` steps of `speed_training.py`'s encoder-decoder
(after warm-up; tfformer's with its own loss and Adam, KerasHub's with Keras') with
`tf.profiler`, then reads the trace's XPlane and sums
the time of every TensorFlow op by its type and by a coarse category
(matmul, elementwise, cast, softmax and loss, XLA-compiled functions,
normalisation, data movement, optimizer, other). Prints the table and writes
benchmarks/results/profile_training_<model>_<policy>.json. On 2 cores the
inter-op pool runs ops side by side, so op times add up to more than the
wall time; the shares are of the summed op time.
"""

import argparse
import collections
import glob
import os
import tempfile
import time

import keras
import tensorflow as tf
from speed import write_record
from speed_training import (
    BATCH,
    LENGTH,
    keras_hub_model,
    keras_loss,
    model_runner,
    tfformer_model,
)
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from tfformer.losses import SparseCategoricalCrossentropy
from tfformer.optimizers import Adam

# Op type -> category; the first prefix that matches wins.
CATEGORIES = [
    ("matmul", ("MatMul", "_MklMatMul", "_FusedMatMul", "_MklFusedMatMul", "BatchMatMul",
                "_MklBatchMatMul", "Einsum", "_MklEinsum")),
    ("cast", ("Cast", "_MklCast")),
    ("XLA-compiled", ("XLA-compiled function",)),
    ("softmax and loss", ("Softmax", "LogSoftmax", "SparseSoftmaxCrossEntropyWithLogits",
                          "_MklSoftmax")),
    ("normalisation", ("FusedBatchNorm", "_MklLayerNorm", "Rsqrt", "Mean", "Sqrt",
                       "SquaredDifference")),
    ("optimizer", ("ResourceApply", "AssignVariableOp", "AssignAddVariableOp",
                   "AssignSubVariableOp", "ReadVariableOp")),
    ("data movement", ("Transpose", "_MklTranspose", "ConcatV2", "Pack", "Unpack", "Slice",
                       "StridedSlice", "Reshape", "Tile", "GatherV2", "ResourceGather",
                       "UnsortedSegmentSum", "BroadcastTo", "Identity", "ExpandDims",
                       "Squeeze", "Pad", "Select", "SelectV2", "Fill", "ZerosLike", "OnesLike")),
    ("elementwise", ("Add", "AddV2", "AddN", "Sub", "Mul", "RealDiv", "Div", "Neg", "Maximum",
                     "Minimum", "Relu", "Gelu", "Erf", "Exp", "Log", "Square", "Pow", "Sum",
                     "Max", "Equal", "Greater", "Less", "LogicalAnd", "LogicalNot",
                     "Tanh", "Sigmoid", "BiasAdd", "_FusedMul", "_MklAdd", "_MklAddV2",
                     "_MklMul", "_MklRelu", "RandomUniform", "StatelessRandom", "Floor",
                     "ReluGrad", "_MklReluGrad", "TanhGrad", "SigmoidGrad", "RsqrtGrad",
                     "SqrtGrad", "Prod", "ArgMax")),
]


def category(op_type):
    for name, prefixes in CATEGORIES:
        if op_type.startswith(prefixes):
            return name
    return "other"


def trace(run, logdir, steps):
    tf.profiler.experimental.start(logdir)
    started = time.perf_counter()
    for _ in range(steps):
        run()
    wall = time.perf_counter() - started
    tf.profiler.experimental.stop()
    return wall


# How an XLA-compiled function (e.g. tfformer's loss) shows in the trace: not as ops.
XLA_RUN = "CpuExecutable::ExecuteAsyncOnStream"
# Ops that run other ops: their time is already in the ops they contain.
CONTAINERS = ("PartitionedCall", "StatefulPartitionedCall", "While", "StatelessWhile", "If",
              "StatelessIf", "__inference")


def op_seconds(logdir):
    """{(op type, op name): summed seconds} over the ops the host's compute threads ran."""
    (path,) = glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb"))
    space = xplane_pb2.XSpace()
    with open(path, "rb") as handle:
        space.ParseFromString(handle.read())
    totals = collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                metadata = plane.event_metadata[event.metadata_id]
                op_type = metadata.display_name  # "" for events that are not ops
                if metadata.name == XLA_RUN:
                    op_type = "XLA-compiled function"
                if op_type and not op_type.startswith(CONTAINERS):
                    op_name = metadata.name.rsplit(":", 1)[0]
                    totals[op_type, op_name] += event.duration_ps * 1e-12
    if not totals:
        raise RuntimeError(f"No TensorFlow op events in {path}; the trace format changed?")
    return totals


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", default="mixed_bfloat16",
                        choices=["float32", "mixed_bfloat16"])
    parser.add_argument("--model", default="tfformer", choices=["tfformer", "keras_hub"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    # Each as speed_training.py trains it: tfformer with its loss and Adam, KerasHub with Keras'.
    build, loss, optimizer = (
        (tfformer_model, SparseCategoricalCrossentropy, Adam) if args.model == "tfformer"
        else (keras_hub_model, keras_loss, keras.optimizers.Adam))
    run = model_runner(build, args.policy, jit_compile=False, loss=loss,
                       optimizer=optimizer)  # 3 steps per call
    run()  # trace and warm up outside the profile
    with tempfile.TemporaryDirectory() as logdir:
        wall = trace(run, logdir, args.steps)
        totals = op_seconds(logdir)
    steps = 3 * args.steps
    per_step = lambda seconds: seconds / steps * 1e3
    summed = sum(totals.values())
    by_type, by_category = collections.Counter(), collections.Counter()
    for (op_type, _), seconds in totals.items():
        by_type[op_type] += seconds
        by_category[category(op_type)] += seconds
    print(f"{args.model} {args.policy}: {steps} steps, wall {per_step(wall):.1f} ms/step, "
          f"op time {per_step(summed):.1f} ms/step")
    for name, seconds in by_category.most_common():
        print(f"  {name:18s} {per_step(seconds):8.2f} ms/step  {seconds / summed:6.1%}")
    print("top op types, each with its three costliest ops:")
    for op_type, seconds in by_type.most_common(args.top):
        print(f"  {op_type:40s} {per_step(seconds):8.2f} ms/step  {seconds / summed:6.1%}"
              f"  [{category(op_type)}]")
        ops = [(name, t) for (kind, name), t in totals.items() if kind == op_type]
        for name, op_seconds_ in sorted(ops, key=lambda item: -item[1])[:3]:
            print(f"      {per_step(op_seconds_):7.2f}  {name[-90:]}")
    write_record(f"profile_training_{args.model}_{args.policy}", {
        "command": f"python benchmarks/profile_training.py --model {args.model} "
                   f"--policy {args.policy} --steps {args.steps}",
        "steps": steps, "batch": BATCH, "length": LENGTH,
        "wall_ms_per_step": round(per_step(wall), 2),
        "op_ms_per_step": round(per_step(summed), 2),
        "categories_ms_per_step": {k: round(per_step(v), 2) for k, v in by_category.most_common()},
        "op_types_ms_per_step": {k: round(per_step(v), 3)
                                 for k, v in by_type.most_common(args.top)},
    })


if __name__ == "__main__":
    main()
