"""One split of a data set as records, listed but not decoded, and how workers divide it."""

import dataclasses
import typing

import tensorflow as tf

from applications.common import example_stream, record_blocks


@dataclasses.dataclass
class RecordSplit:
    """A split's records: a finite dataset of dicts with an int64 "id" (the record's index
    in the split) and what the application decodes (a path, encoded bytes, a line).

    `files` lists a prepared split's shards, ((path, examples), ...), and `read_files`
    reads some of them back as records (`shards.read_records`)."""

    records: tf.data.Dataset
    count: int
    name: str
    files: tuple = ()
    read_files: typing.Callable | None = None

    def share(self, worker, workers):
        """(this worker's part of the split, how it was split): whole shards when there are
        at least as many as workers, else every workers-th record."""
        if workers == 1:
            return self, "whole"
        if len(self.files) >= workers:
            files = self.files[worker::workers]
            return dataclasses.replace(
                self, records=self.read_files([path for path, _ in files]),
                count=sum(n for _, n in files), files=files), "by file"
        return dataclasses.replace(
            self, records=self.records.shard(workers, worker),
            count=example_stream.shard_size(self.count, worker, workers), files=()), \
            "by example"

    def held_out(self, fraction):
        """(train, val): `fraction` of the records (at least one), evenly spread by id (a
        sorted source gives every part of it to both)."""
        held = max(1, int(self.count * fraction))

        def is_held(records):
            index = records["id"]
            return (index + 1) * held // self.count != index * held // self.count

        def kept(keep):
            return record_blocks.kept_where(self.records, keep)

        return (dataclasses.replace(
                    self, records=kept(lambda block: tf.logical_not(is_held(block))),
                    count=self.count - held, name="train", files=()),
                dataclasses.replace(self, records=kept(is_held), count=held, name="val",
                                    files=()))
