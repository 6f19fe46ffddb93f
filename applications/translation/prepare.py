"""`tfformer prepare translation`: any layout `--data` reads, as TFRecord shards of text pairs.

Each example holds the pair's "source" and "target" text. Lines that are not valid UTF-8
and TSV lines without one tab are left out and named, as in training. The training split
is shuffled whole as it is written (`shards.write_shuffled`: text files are read in order,
and their neighbouring lines are alike), so each shard is a random sample and the
training stream, which shuffles a block at a time, reads well-mixed pairs. The other
splits keep their order. See `applications.common.shards` for the layout.
"""

import os

from applications.common import bad_examples, shards
from applications.translation import corpus, data


def _serialized(split, config):
    """(position, serialized example) of every good pair of `split`, in order."""
    for position, example in enumerate(data.good_pairs(split, split.records, config,
                                                       split.count).as_numpy_iterator()):
        yield position, shards.serialize(source=shards.bytes_feature(example["source"]),
                                         target=shards.bytes_feature(example["target"]))


def prepare(data_dir, output, config, num_shards=8):
    """Writes the splits of `data_dir` as shards under `output`; returns a summary line.
    Run again after an interruption, it goes on from the first shard not written."""
    if data_dir is None:
        raise ValueError("prepare needs --data: the built-in pairs are made when training")
    if os.path.abspath(data_dir) == os.path.abspath(output):
        raise ValueError("--output must be another directory than --data")
    splits = corpus.list_corpus(data_dir, config)
    os.makedirs(output, exist_ok=True)
    with bad_examples.bad_data_errors():
        written, summary = shards.write_splits(
            output, splits, lambda split: _serialized(split, config), config.seed, num_shards,
            "pairs")
    shards.write_metadata(output, corpus.APPLICATION, written,
                          source_language=config.source_language,
                          target_language=config.target_language)
    return f"prepared {data_dir} in {output}: {summary}"
