"""Sharded TFRecord data sets, as `tfformer prepare` writes them and `--data` reads them.

A prepared directory holds, per split, shards named `<split>-00003-of-00008.tfrecord`, and
`dataset.json`:

    {"format": "tfformer-shards", "version": 1, "application": "image_classification",
     "splits": {"train": {"examples": 1200, "shards": [
         {"file": "train-00000-of-00008.tfrecord", "examples": 150, "bytes": 48213}, ...]}},
     ...what the application keeps beside them (class names, a tokenizer)}

Each shard is written to `<name>.partial` and renamed when complete, with its counts in
`<name>.json` beside it; `dataset.json` comes last. So an interrupted `prepare` leaves no
shard that a reader would take for a whole one, and the same command again goes on from the
first shard that is missing. Readers compare every shard's size with `dataset.json` before
training: a shard cut short (a copy that stopped) is named, and its examples count as bad.
"""

import json
import os

import tensorflow as tf

from applications.common.text_files import DataError

FORMAT = "tfformer-shards"
METADATA = "dataset.json"


def shard_name(split, index, count):
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def is_prepared(directory):
    """Whether `directory` is a prepared data set; an unfinished one is an error that says
    how to finish it."""
    if os.path.isfile(os.path.join(directory, METADATA)):
        return True
    if any(name.endswith((".tfrecord", ".tfrecord.partial", ".tfrecord.scatter"))
           for name in os.listdir(directory)):
        raise DataError(f"{directory} holds shards but no {METADATA}: an unfinished "
                        "`tfformer prepare`; run the same command again to finish it")
    return False


def read_metadata(directory, application):
    """dataset.json of a prepared directory, checked to be `application`'s."""
    path = os.path.join(directory, METADATA)
    try:
        with open(path, encoding="utf-8") as handle:
            metadata = json.load(handle)
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read {path}: {error}") from None
    if metadata.get("format") != FORMAT:
        raise DataError(f"{path} is not a `tfformer prepare` data set")
    if metadata.get("application") != application:
        raise DataError(f"{directory} was prepared for {metadata.get('application')}, not "
                        f"{application}: prepare it with `tfformer prepare {application}`")
    return metadata


def intact_shards(directory, split_metadata):
    """([(path, examples)] of the shards whose size is as written, [(path, problem,
    examples)] of the others: missing or cut short)."""
    intact, damaged = [], []
    for shard in split_metadata["shards"]:
        path = os.path.join(directory, shard["file"])
        size = os.path.getsize(path) if os.path.isfile(path) else None
        if size == shard["bytes"]:
            intact.append((path, shard["examples"]))
        elif size is None:
            damaged.append((path, "missing", shard["examples"]))
        else:
            damaged.append((path, f"cut short ({size:,} of {shard['bytes']:,} bytes)",
                            shard["examples"]))
    return intact, damaged


def usable_shards(directory, metadata, max_bad_share, unit):
    """{split: [(path, examples)] of its intact shards} of a prepared directory (splits
    with none left out). A damaged shard is named and its examples count as bad: more than
    `max_bad_share` of a split is an error. `unit` names the examples ("images")."""
    from applications.common.bad_examples import TOO_MANY

    usable = {}
    for name, split in metadata["splits"].items():
        intact, damaged = intact_shards(directory, split)
        lost = sum(examples for _, _, examples in damaged)
        for path, problem, examples in damaged:
            print(f"skipping shard {path}: {problem}; its {examples} {unit} are lost")
        if lost > max_bad_share * split["examples"]:
            raise DataError(f"{TOO_MANY} in the {name} {unit}: the shards "
                            f"{', '.join(p for p, _, _ in damaged)} are damaged ({lost} of "
                            f"{split['examples']} {unit}), more than max_bad_share="
                            f"{max_bad_share:g}; prepare the data again")
        if intact:
            usable[name] = intact
    return usable


def read_records(paths, parse):
    """The examples of `paths` (TFRecord shards), parsed with `parse(serialized)` (a dict),
    each given an int64 "id": its position in the shards read one after another."""
    files = tf.data.Dataset.from_tensor_slices(list(paths))
    return files.flat_map(tf.data.TFRecordDataset).enumerate().map(
        lambda index, serialized: {"id": index, **parse(serialized)},
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


class ShardWriter:
    """Writes one split into `count` shards under `directory`: shard i holds the examples
    of records [i * total / count, (i + 1) * total / count) of the order they come in (a
    shuffled order makes each shard a random sample). Each shard is renamed into place as
    soon as the records after it begin, so an interrupted run keeps the shards it finished
    and the same command (the records in the same order) starts at `first_record`."""

    def __init__(self, directory, split, count, total):
        self.paths = [os.path.join(directory, shard_name(split, i, count)) for i in range(count)]
        self.bounds = [i * total // count for i in range(count + 1)]
        self.done = [os.path.isfile(p) and os.path.isfile(p + ".json") for p in self.paths]
        self.current, self.writer, self.examples = None, None, 0

    @property
    def first_record(self):
        """Where to start reading the records: the first shard not yet written."""
        undone = [i for i, done in enumerate(self.done) if not done]
        return self.bounds[undone[0]] if undone else self.bounds[-1]

    def _shard_of(self, position):
        return next(i for i in range(len(self.paths)) if position < self.bounds[i + 1])

    def write(self, position, serialized):
        """One example, from the record at `position` (positions only grow)."""
        self._advance(self._shard_of(position))
        if self.writer is not None:
            self.writer.write(serialized)
            self.examples += 1

    def _advance(self, shard):
        while self.current is None or self.current < shard:
            self._finish()
            self.current = 0 if self.current is None else self.current + 1
            if not self.done[self.current]:
                self.writer = tf.io.TFRecordWriter(self.paths[self.current] + ".partial")
                self.examples = 0

    def _finish(self):
        if self.writer is None:
            return
        path = self.paths[self.current]
        self.writer.close()
        self.writer = None
        os.replace(path + ".partial", path)
        _write_json(path + ".json", {"examples": self.examples, "bytes": os.path.getsize(path)})
        self.done[self.current] = True

    def close(self):
        """Finishes every shard (those whose records were all bad are empty); returns the
        split's shard list for dataset.json."""
        self._advance(len(self.paths) - 1)
        self._finish()
        shards = []
        for path in self.paths:
            with open(path + ".json", encoding="utf-8") as handle:
                shards.append({"file": os.path.basename(path), **json.load(handle)})
        return shards

    def abandon(self):
        """After a failure: the shard being written is dropped, finished ones stay."""
        if self.writer is not None:
            self.writer.close()
            os.remove(self.paths[self.current] + ".partial")
            self.writer = None


def write_in_order(directory, split, count, total, examples):
    """Writes a split's examples in the order they come, into `count` shards (`ShardWriter`);
    returns its shard list. `examples(first_record)` gives (position, serialized) pairs from
    the record where an interrupted run stopped."""
    writer = ShardWriter(directory, split, count, total)
    try:
        for position, example in examples(writer.first_record):
            writer.write(position, example)
    except BaseException:
        writer.abandon()  # finished shards stay: the same command goes on from them
        raise
    return writer.close()


def write_shuffled(directory, split, count, examples, seed):
    """Writes `examples` (serialized, in any order) into `count` shards in a random order,
    with memory for one shard: each goes to a random shard's scatter file (every shard
    gets one of each `count` examples, so shards differ by one at most), then each
    scatter file is shuffled whole and written as its shard (`.partial`, renamed). A shard
    already written is kept, so an interrupted run finishes with the same command; returns
    the shard list for dataset.json. (Text read in order needs this: a file's neighbours
    are alike, and a training stream shuffles only a block at a time.)"""
    import numpy as np

    paths = [os.path.join(directory, shard_name(split, i, count)) for i in range(count)]
    undone = [i for i, p in enumerate(paths) if not (os.path.isfile(p)
                                                     and os.path.isfile(p + ".json"))]
    if undone:
        scattered = {i: tf.io.TFRecordWriter(paths[i] + ".scatter") for i in undone}
        choose = np.random.default_rng([seed, count])
        for index, serialized in enumerate(examples):
            if index % count == 0:  # each run of `count` examples: one to every shard
                order = choose.permutation(count)
            shard = int(order[index % count])
            if shard in scattered:
                scattered[shard].write(serialized)
        for writer in scattered.values():
            writer.close()
        for i in undone:
            records = list(tf.data.TFRecordDataset(paths[i] + ".scatter").as_numpy_iterator())
            with tf.io.TFRecordWriter(paths[i] + ".partial") as writer:
                for index in np.random.default_rng([seed, i]).permutation(len(records)):
                    writer.write(records[index])
            os.replace(paths[i] + ".partial", paths[i])
            _write_json(paths[i] + ".json", {"examples": len(records),
                                             "bytes": os.path.getsize(paths[i])})
            os.remove(paths[i] + ".scatter")
    shards = []
    for path in paths:
        with open(path + ".json", encoding="utf-8") as handle:
            shards.append({"file": os.path.basename(path), **json.load(handle)})
    return shards


def write_splits(output, splits, serialized, seed, num_shards, unit):
    """Writes every split as shards: {name: split (with .count)} and `serialized(split)`,
    the split's (position, serialized example) in order; the training split shuffled whole
    (`write_shuffled`), the others in order (`ShardWriter`). Returns (the shard lists for
    `write_metadata`, a summary such as "train 120 clips in 8 shards")."""
    written, lines = {}, []
    for name, split in splits.items():
        if not split.count:
            continue
        count = max(1, min(num_shards, split.count))
        if name == "train":
            written[name] = write_shuffled(output, name, count,
                                           (s for _, s in serialized(split)), seed)
        else:
            written[name] = write_in_order(output, name, count, split.count,
                                           lambda first, split=split: serialized(split))
        lines.append(f"{name} {sum(s['examples'] for s in written[name])} {unit} in "
                     f"{count} shards")
    return written, ", ".join(lines)


def _write_json(path, content):
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(content, handle, indent=1)
    os.replace(path + ".tmp", path)


def write_metadata(directory, application, splits, **extra):
    """dataset.json, written last: the directory is a prepared data set from then on."""
    _write_json(os.path.join(directory, METADATA), {
        "format": FORMAT, "version": 1, "application": application,
        "splits": {name: {"examples": sum(s["examples"] for s in shards), "shards": shards}
                   for name, shards in splits.items()}, **extra})


def bytes_feature(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def int_feature(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def serialize(**features):
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()
