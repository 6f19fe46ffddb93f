"""One worker of a localhost MultiWorkerMirroredStrategy cluster (TF_CONFIG from the
environment): reads one pass of the image training stream as training does (its share of
the records, distributed by the strategy) and saves the numbers its replicas received (each
image's first pixel). Each DATA_DIR in turn, in one cluster (starting one costs more than
reading).

    python -m tests.support.multi_worker_images DATA_DIR RESULT.npy [DATA_DIR RESULT.npy ...]
"""

import dataclasses
import sys

import numpy as np

from applications.common.strategy import input_worker, make_strategy
from applications.image_classification import data
from applications.image_classification.config import PRESETS, ImageClassificationConfig

CONFIG = dataclasses.replace(ImageClassificationConfig(**PRESETS["tiny"]), image_size=16,
                             patch_size=8, batch_size=8, augment=False)


def main(*arguments):
    strategy = make_strategy("multi_worker")
    for data_dir, result_path in zip(arguments[::2], arguments[1::2]):
        read_one_pass(strategy, data_dir, result_path)


def read_one_pass(strategy, data_dir, result_path):
    splits, names = data.list_images(data_dir, CONFIG)
    worker = input_worker(strategy)
    print("sharded", splits["train"].share(*worker)[1])
    stream = data.training_batches(splits["train"], CONFIG, len(names), worker=worker)
    batches = iter(strategy.experimental_distribute_dataset(stream))
    numbers = []
    for _ in range(splits["train"].count // CONFIG.batch_size):  # one pass of every worker
        images, _ = next(batches)
        for local in strategy.experimental_local_results(images):
            numbers += np.asarray(local)[:, 0, 0, 0].tolist()
    np.save(result_path, np.array(numbers))


if __name__ == "__main__":
    main(*sys.argv[1:])
