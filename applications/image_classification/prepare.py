"""`tfformer prepare image_classification`: any layout `--data` reads, as TFRecord shards.

Each example keeps the image as it was encoded (a folder's file bytes, a TFDS record's;
IDX images become PNG), so the shards serve any image size later, and its label. The
training split is shuffled (seeded) as it is written, round-robin into the shards, so each
shard is a random sample and two workers reading different shards see alike data. Images
that do not decode are left out and named, as in training. See `applications.common.shards`
for the layout and how an interrupted run is finished.
"""

import os

import tensorflow as tf

from applications.common import bad_examples, example_stream, shards
from applications.image_classification import data
from applications.image_classification.preprocessing import image_problem


def _encoded(record, split):
    """record -> its image as encoded bytes, as it was stored (PNG for raw pixels)."""
    if "path" in record:
        return tf.io.read_file(record["path"])
    if "encoded" in record:
        return record["encoded"]
    if "raw" in record:
        pixels = tf.reshape(tf.io.decode_raw(record["raw"], tf.uint8), (*split.raw_shape, 1))
    else:
        pixels = record["pixels"]
    return tf.io.encode_png(pixels)


def _checked_examples(split, config, shuffle, first_record):
    """(encoded bytes, label, record position, decoded shape) of every image that decodes,
    from record `first_record` on; bad ones named and skipped."""
    records = split.records
    if shuffle:
        records = example_stream.one_pass(records, split.count, config.seed, 0,
                                          split.shuffle_buffer(config))
    records = records.enumerate().map(lambda position, record: {**record,
                                                                 "position": position})
    records = records.skip(first_record)

    def checked(record):
        encoded = _encoded(record, split)
        # Decoding raises for a bad image; its shape is returned so the decode is not
        # pruned as unused.
        decoded = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        return encoded, record["label"], record["position"], tf.shape(decoded)

    def placeholder(record):
        return tf.constant(b""), record["label"], record["position"], tf.zeros(3, tf.int32)

    def reason(record):
        return image_problem(_encoded(record, split))

    flagged = bad_examples.decode_or_flag(records, checked, placeholder, reason,
                                          data.image_source(split))
    return bad_examples.skip_bad(flagged, split.count, config.max_bad_share,
                                 f"the {split.name} images")


def prepare(data_dir, output, config, num_shards=8):
    """Writes the splits of `data_dir` as shards under `output`; returns a summary line.
    Run again after an interruption, it goes on from the first shard not written."""
    if data_dir is None:
        raise ValueError("prepare needs --data: the built-in images are made when training")
    if os.path.abspath(data_dir) == os.path.abspath(output):
        raise ValueError("--output must be another directory than --data")
    splits, class_names = data.list_images(data_dir, config)
    os.makedirs(output, exist_ok=True)
    written, lines = {}, []
    with bad_examples.bad_data_errors():
        for name, split in splits.items():
            count = max(1, min(num_shards, split.count))

            def examples(first, split=split, training=name == "train"):
                for encoded, label, position, _ in _checked_examples(split, config, training,
                                                                     first):
                    yield int(position), shards.serialize(
                        image=shards.bytes_feature(encoded.numpy()),
                        label=shards.int_feature(label))

            written[name] = shards.write_in_order(output, name, count, split.count, examples)
            lines.append(f"{name} {sum(s['examples'] for s in written[name])} images in "
                         f"{count} shards")
    shards.write_metadata(output, "image_classification", written, class_names=class_names)
    return f"prepared {data_dir} in {output}: " + ", ".join(lines)
