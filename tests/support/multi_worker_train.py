"""One worker of a localhost MultiWorkerMirroredStrategy cluster (TF_CONFIG from the
environment): trains a very small translator and saves its final weights and outputs.

    python -m tests.support.multi_worker_train WORKDIR EXPORT_DIR RESULT.npz
"""

import dataclasses
import sys

import numpy as np

from applications.translation.config import PRESETS, TranslationConfig
from applications.translation.train import train

CONFIG = dataclasses.replace(
    TranslationConfig(**PRESETS["tiny"]), builtin_examples=600, vocabulary_size=80,
    num_layers=1, d_model=32, num_heads=2, intermediate_dim=64, epochs=2, steps_per_epoch=5,
    batch_size=16, max_target_length=16, max_source_length=12, beam_size=2)


def main(workdir, export_dir, result_path):
    result = train(CONFIG, workdir=workdir, export_dir=export_dir, strategy="multi_worker",
                   verbose=2, examples=0)
    translations = result["server"].serve(np.array(["seven hundred two", "one red apple"]))
    np.savez(result_path, *result["model"].get_weights(),
             translations=translations["translation"].numpy().astype("U"),
             loss=np.array(result["history"]["loss"]),
             val_loss=np.array(result["history"]["val_loss"]))


if __name__ == "__main__":
    main(*sys.argv[1:4])
