"""One worker of a localhost MultiWorkerMirroredStrategy cluster (TF_CONFIG from the
environment): reads the translation training stream as training does (its share of the
pairs, distributed by the strategy) for `STEPS` steps and saves the pair numbers its
replicas received (each source is "n<number> ..."). Each DATA_DIR in turn, in one cluster
(starting one costs more than reading).

    python -m tests.support.multi_worker_text STEPS DATA_DIR RESULT.npy [DATA_DIR RESULT.npy ...]
"""

import dataclasses
import sys

import numpy as np

from applications.common.strategy import input_worker, make_strategy
from applications.translation import corpus, data
from applications.translation.config import PRESETS, TranslationConfig
from applications.translation.vocabularies import SentencePieceVocabulary

CONFIG = dataclasses.replace(TranslationConfig(**PRESETS["tiny"]), vocabulary_size=120,
                             batch_size=4)


def main(steps, *arguments):
    strategy = make_strategy("multi_worker")
    for data_dir, result_path in zip(arguments[::2], arguments[1::2]):
        read_steps(strategy, data_dir, result_path, int(steps))


def read_steps(strategy, data_dir, result_path, steps):
    splits = corpus.list_corpus(data_dir, CONFIG)
    worker = input_worker(strategy)
    print("sharded", splits["train"].share(*worker)[1])
    source_proto, target_proto = data.train_tokenizers(
        data.sample_pairs(splits["train"], 1000), CONFIG)
    source = SentencePieceVocabulary(source_proto, CONFIG.max_source_length)
    stream = data.training_batches(splits["train"], source,
                                   SentencePieceVocabulary(target_proto), CONFIG, worker=worker)
    batches = iter(strategy.experimental_distribute_dataset(stream))
    numbers = []
    for _ in range(steps):
        inputs, _ = next(batches)
        for local in strategy.experimental_local_results(inputs["source_ids"]):
            texts = source.detokenize(local).numpy()
            numbers += [int(text.split()[0][1:]) for text in texts]
    np.save(result_path, np.array(numbers))


if __name__ == "__main__":
    main(*sys.argv[1:])
