"""Peak resident memory of training each application at its `tiny` and `small` presets.

    .venv/bin/python benchmarks/memory_presets.py [--steps 5]

Each (application, preset) trains for `--steps` batches at the preset's batch
size in a fresh process, as `tfformer train` would (data pipeline, model,
optimizer, callbacks), and reports the process's peak resident set (VmHWM)
when training ends, before evaluation and export, and its growth over the
process after imports. Data is built in, except translation `small`, whose
8,000-subword vocabulary needs a real corpus: Multi30k from
`../shared/data/multi30k`, skipped when absent. On this CPU, host memory is
the device memory. `base` (ViT-B/16) is left out: it needs more than this
machine's memory at batch 64. Writes benchmarks/results/memory_presets.json.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

from speed import HERE, memory_kib, write_record

MULTI30K = os.path.join(HERE, "..", "..", "shared", "data", "multi30k")
APPLICATIONS = ("translation", "image_classification", "speech_recognition")
PRESET_NAMES = ("tiny", "small")


def measure(application, preset, steps):
    """Runs in a subprocess: trains `steps` batches, returns peak memory in MiB."""
    from applications.common import distributed_fit
    from applications.common.config import apply_overrides, from_preset
    from applications.common.registry import discover

    described = discover()[application]
    config = apply_overrides(from_preset(described.config_class, described.presets, preset),
                             ["epochs=1", f"steps_per_epoch={steps}"])
    data_dir = MULTI30K if (application, preset) == ("translation", "small") else None
    after_imports = memory_kib()["peak"]
    memory = {}
    fit = distributed_fit.fit

    def fit_then_measure(*args, **kwargs):
        history = fit(*args, **kwargs)
        memory.update(memory_kib())
        return history

    distributed_fit.fit = fit_then_measure  # memory when training ends, before the export
    with tempfile.TemporaryDirectory() as workdir:
        described.train(config, data_dir=data_dir, workdir=os.path.join(workdir, "run"),
                        export_dir=os.path.join(workdir, "export"), verbose=0, examples=0)
    return {"batch_size": config.batch_size,
            "peak_mib": round(memory["peak"] / 1024, 1),
            "growth_over_imports_mib": round((memory["peak"] - after_imports) / 1024, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--measure", nargs=2, metavar=("APPLICATION", "PRESET"),
                        help=argparse.SUPPRESS)  # internal: one measurement
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure, args.steps)))
        return
    results, skipped = {}, {}
    for application in APPLICATIONS:
        for preset in PRESET_NAMES:
            key = f"{application}/{preset}"
            if (application, preset) == ("translation", "small") and not os.path.isdir(MULTI30K):
                skipped[key] = f"needs {MULTI30K}"
                continue
            run = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--measure", application, preset,
                 "--steps", str(args.steps)], check=False, capture_output=True, text=True)
            if run.returncode:
                raise RuntimeError(f"{key} failed:\n{run.stderr[-3000:]}")
            results[key] = json.loads(run.stdout.strip().splitlines()[-1])
            print(key, results[key], flush=True)
    write_record("memory_presets", {
        "command": f"python benchmarks/memory_presets.py --steps {args.steps}",
        "steps": args.steps, "results": results, "skipped": skipped})


if __name__ == "__main__":
    main()
