"""Translation corpora listed as records, streamed from disk: nothing is held in memory.

`list_corpus(directory, config)` gives {"train", "val", "test"} -> TextSplit.
Layouts:

- plain parallel files, one sentence per line, optionally gzipped:
  `train.<src>` + `train.<tgt>`, then `val|valid|dev.*` and `test.*`
  (the Multi30k layout);
- tab-separated pairs: `train.tsv`, `val.tsv`, `test.tsv` (optionally .gz),
  `source<TAB>target` per line (blank lines are left out);
- a TFDS dataset directory already on disk (with `dataset_info.json`) whose
  features are named by the language codes, as TFDS' translation sets are;
- a `tfformer prepare translation` directory (TFRecord shards).

Listing reads each text file once, in C-speed chunks: its lines are counted (so
parallel files that do not align are named before training) and a file cut
short or a corrupt gzip stream is named now, not hours in. A line that is not
valid UTF-8, or a TSV line without exactly one tab, is a bad example: skipped
and named while streaming (`pairs`), as `applications.common.bad_examples` does.
"""

import dataclasses
import gzip
import os

import numpy as np
import tensorflow as tf

from applications.common import record_blocks, shards
from applications.common.record_split import RecordSplit
from applications.common.text_files import (
    READ_ERRORS,
    DataError,
    find_file,
    find_tfds_directory,
    read_error,
)
from applications.translation import builtin_data

SPLIT_NAMES = {"train": ("train",), "val": ("val", "valid", "dev", "validation"),
               "test": ("test", "test2016", "test_2016_flickr")}
APPLICATION = "translation"


@dataclasses.dataclass
class TextSplit(RecordSplit):
    """One split's records (`RecordSplit`): dicts with an int64 "id" and either "source"
    and "target" strings or "line", a raw TSV line; "number", the line number in `path`
    (`path` names the files, for messages)."""

    path: str = ""

    def shuffle_buffer(self, config):
        """Records a pass shuffles at a time: text is read in order, so in blocks of
        `config.shuffle_buffer` (a prepared set was shuffled whole when it was written)."""
        return min(self.count, config.shuffle_buffer)


def _line_count(path, skip_blank=False):
    """Lines in a text file, gzipped or not, as TextLineDataset reads them (a last line
    without a newline counts); the whole file is read, so damage is named now."""
    opener = gzip.open if path.endswith(".gz") else open
    count, last = 0, b"\n"
    try:
        with opener(path, "rb") as handle:
            if skip_blank:
                return sum(1 for line in handle if line.strip())
            while chunk := handle.read(1 << 22):
                count += chunk.count(b"\n")
                last = chunk[-1:]
    except READ_ERRORS as error:
        raise read_error(path, error) from None
    return count + (last != b"\n")


def _text_lines(path):
    return tf.data.TextLineDataset(path, compression_type="GZIP" if path.endswith(".gz")
                                   else None)


LIST_BATCH = 4096  # lines numbered together: a per-line step would dominate the reading


def _numbered(batches, columns):
    """Batches of lines -> records {"id", "number" (id + 1, unless `columns` gives it),
    **columns(batch)}, one per line, numbered a batch at a time."""
    def number(index, batch):
        values = columns(batch)
        size = tf.shape(tf.nest.flatten(values)[0], out_type=tf.int64)[0]
        ids = index * LIST_BATCH + tf.range(size)
        return {"id": ids, "number": ids + 1, **values}

    return batches.enumerate().map(number).unbatch()


def _parallel_split(name, source_path, target_path):
    count, target_count = _line_count(source_path), _line_count(target_path)
    if count != target_count:
        raise DataError(f"{source_path} has {count} lines but {target_path} has "
                        f"{target_count}; parallel files must align line by line")
    records = tf.data.Dataset.zip(_text_lines(source_path), _text_lines(target_path))
    records = _numbered(records.batch(LIST_BATCH), lambda pair: {"source": pair[0],
                                                                  "target": pair[1]})
    common = os.path.commonprefix([source_path, target_path])
    label = f"{common}{{{source_path[len(common):]},{target_path[len(common):]}}}"
    return TextSplit(records, count, name, path=label)


def _tsv_split(name, path):
    lines = _text_lines(path).enumerate(start=1).filter(
        lambda number, line: tf.strings.length(tf.strings.strip(line)) > 0)
    records = _numbered(lines.batch(LIST_BATCH), lambda numbered: {
        "line": numbered[1], "number": numbered[0]})  # the line number in the file
    return TextSplit(records, _line_count(path, skip_blank=True), name, path=path)


def _list_text_files(directory, source, target):
    splits = {}
    for split, names in SPLIT_NAMES.items():
        for name in names:
            source_path = find_file(directory, f"{name}.{source}")
            target_path = find_file(directory, f"{name}.{target}")
            tsv_path = find_file(directory, f"{name}.tsv")
            if source_path and target_path:
                splits[split] = _parallel_split(split, source_path, target_path)
            elif tsv_path:
                splits[split] = _tsv_split(split, tsv_path)
            else:
                continue
            break
    return splits


def _list_tfds(directory, source, target):
    import tensorflow_datasets as tfds  # only needed for this layout

    builder = tfds.builder_from_directory(directory)
    splits = {}
    for split, names in SPLIT_NAMES.items():
        for name in names:
            if name in builder.info.splits:
                records = builder.as_dataset(split=name, shuffle_files=False).enumerate().map(
                    lambda index, example: {"id": index, "number": index + 1,
                                            "source": example[source],
                                            "target": example[target]})
                splits[split] = TextSplit(records, builder.info.splits[name].num_examples,
                                          split, path=f"{directory} ({name})")
                break
    return splits


def _parse_example(serialized):
    example = tf.io.parse_single_example(serialized, {
        "source": tf.io.FixedLenFeature([], tf.string),
        "target": tf.io.FixedLenFeature([], tf.string)})
    return dict(example)


def read_shards(paths):
    """Records of `tfformer prepare translation` shards."""
    return shards.read_records(paths, _parse_example).map(
        lambda record: {**record, "number": record["id"] + 1})


def _list_prepared(directory, config):
    """A prepared directory's shards, checked against dataset.json (a shard cut short or
    missing is named, and its pairs count as bad)."""
    metadata = shards.read_metadata(directory, APPLICATION)
    languages = (metadata.get("source_language"), metadata.get("target_language"))
    if languages != (config.source_language, config.target_language):
        raise DataError(f"{directory} holds {languages[0]} to {languages[1]} pairs, but "
                        f"source_language={config.source_language!r} and target_language="
                        f"{config.target_language!r}")
    splits = {}
    for name, intact in shards.usable_shards(directory, metadata, config.max_bad_share,
                                             "pairs").items():
        splits[name] = TextSplit(read_shards([p for p, _ in intact]), sum(n for _, n in intact),
                                 name, files=tuple(intact), read_files=read_shards,
                                 path=f"{directory} ({name} shards)")
    return splits


def from_pairs(name, pairs):
    """A TextSplit of (source, target) pairs in memory."""
    sources = [s for s, _ in pairs] or np.zeros(0, object)
    targets = [t for _, t in pairs] or np.zeros(0, object)
    records = tf.data.Dataset.from_tensor_slices(
        {"source": tf.constant(sources, tf.string), "target": tf.constant(targets, tf.string)})
    records = records.enumerate().map(lambda index, record: {
        **record, "id": index, "number": index + 1})
    return TextSplit(records, len(pairs), name, path=f"the built-in {name} pairs")


def list_corpus(directory, config):
    """{"train", "val", "test"} -> TextSplit, built in when `directory` is None; nothing is
    read into memory. A missing validation split is held out of training (2%, evenly
    spread); a missing test split is empty."""
    if directory is None:
        if (config.source_language, config.target_language) != ("en", "de"):
            raise DataError(
                f"the built-in data is English to German; source_language="
                f"{config.source_language!r} and target_language={config.target_language!r} "
                "choose the files of a corpus given with --data")
        generated = builtin_data.generate(config.builtin_examples, seed=config.seed)
        return {name: from_pairs(name, pairs) for name, pairs in generated.items()}
    if not os.path.isdir(directory):
        raise DataError(f"data directory {directory} does not exist")
    source, target = config.source_language, config.target_language
    tfds_root = find_tfds_directory(directory)
    if shards.is_prepared(directory):
        splits = _list_prepared(directory, config)
    elif tfds_root and not find_file(directory, f"train.{source}"):
        splits = _list_tfds(tfds_root, source, target)
    else:
        splits = _list_text_files(directory, source, target)
    if not splits.get("train") or not splits["train"].count:
        raise DataError(
            f"no training data in {directory}: expected train.{source}[.gz] and "
            f"train.{target}[.gz], train.tsv[.gz], a TFDS dataset directory or a "
            "`tfformer prepare` directory")
    if not splits.get("val"):
        splits["train"], splits["val"] = splits["train"].held_out(1 / 50)
    splits.setdefault("test", from_pairs("test", []))
    return splits


def sampled(split, limit):
    """At most `limit` of `split`'s records, evenly spread over it (a prepared split was
    shuffled when written, so its head is such a sample already): the bounded input of
    the tokenizer. They are still read through once, at the reader's speed."""
    records, count = record_blocks.spread_sample(split.records, split.count, limit,
                                                 shuffled=bool(split.files))
    return dataclasses.replace(split, records=records, count=count)
