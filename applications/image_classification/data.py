"""Image classification data, streamed: image folders, MNIST-format IDX files, TFDS, built in.

`list_images(directory, config)` lists each split's records without decoding
anything: {"train"|"val"|"test": ImageSplit} and the class names. Layouts:

- an image folder: one subfolder per class holding JPEG/PNG/BMP/GIF files;
  `train/` and `val/` (or `validation/`) subfolders, each laid out that way,
  give separate splits;
- MNIST-format IDX files: `train-images-idx3-ubyte[.gz]` and
  `train-labels-idx1-ubyte[.gz]` (and `t10k-*` as the test split);
- a TFDS dataset directory already on disk with `image` and `label` features.

Without a validation split, `val_fraction` of the training records, evenly
spread over it, is held out. `training_batches` and `batches` decode, resize
and augment in the tf.data pipeline, in parallel, so memory does not grow with
the data set; images that do not decode are skipped and named
(`applications.common.bad_examples`). Images are decoded with TensorFlow's
own decoders, the same ops the export uses.
"""

import dataclasses
import gzip
import os
import struct

import numpy as np
import tensorflow as tf

from applications.common import bad_examples, example_stream, shards
from applications.common.record_split import RecordSplit
from applications.common.text_files import (
    READ_ERRORS,
    DataError,
    find_file,
    find_tfds_directory,
    read_error,
)
from applications.image_classification import builtin_data
from applications.image_classification.preprocessing import (
    decode_image,
    image_problem,
    resize_pixels,
)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


@dataclasses.dataclass
class ImageSplit(RecordSplit):
    """One split's records, undecoded (`RecordSplit`): dicts with an int64 "id", an int32
    "label" and one of "path" (an image file), "encoded" (image bytes), "raw" (an IDX
    image's bytes, `raw_shape`) or "pixels" (uint8 (H, W, 3))."""

    raw_shape: tuple = ()

    @property
    def can_fail(self):
        """Whether a record can fail to decode (an image file or encoded bytes)."""
        return bool({"path", "encoded"} & set(self.records.element_spec))

    def shuffle_buffer(self, config):
        """How many records a pass shuffles at a time: all paths and small IDX images (a
        full permutation), encoded images in blocks of `config.shuffle_buffer` (such sets,
        TFDS' and `tfformer prepare`'s, are shuffled when they are written)."""
        return config.shuffle_buffer if "encoded" in self.records.element_spec else None


def _from_slices(name, **columns):
    count = len(columns["label"])
    columns["id"] = np.arange(count, dtype=np.int64)
    return ImageSplit(tf.data.Dataset.from_tensor_slices(columns), count, name)


def from_arrays(name, images, labels):
    """An ImageSplit of images in memory: uint8 (N, H, W, 3) and int labels (N,)."""
    return _from_slices(name, pixels=np.asarray(images, np.uint8),
                        label=np.asarray(labels, np.int32))


# --- listing -----------------------------------------------------------------------------

def _idx_header(path, magic):
    """The dimensions in an IDX file's header; the file is read through once (in pieces)
    so a file cut short or corrupt is named now, not hours into training."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            head = handle.read(4)
            if len(head) < 4 or struct.unpack(">I", head)[0] != magic:
                raise DataError(f"{path} is not an IDX file with magic number {magic}")
            dims = struct.unpack(f">{head[3]}I", handle.read(4 * head[3]))
            size = 0
            while chunk := handle.read(1 << 22):
                size += len(chunk)
    except READ_ERRORS as error:
        raise read_error(path, error) from None
    if size != int(np.prod(dims)):
        raise DataError(f"{path}: header says {dims} but holds {size} values")
    return dims


def _idx_split(name, images_path, labels_path):
    (count, rows, cols), (label_count,) = (_idx_header(images_path, 2051),
                                           _idx_header(labels_path, 2049))
    if count != label_count:
        raise DataError(f"{images_path} has {count} images but {labels_path} has "
                        f"{label_count} labels")

    def fixed(path, size, header):
        return tf.data.FixedLengthRecordDataset(
            path, size, header_bytes=header,
            compression_type="GZIP" if path.endswith(".gz") else None)

    records = tf.data.Dataset.zip(fixed(images_path, rows * cols, 16),
                                  fixed(labels_path, 1, 8)).enumerate().map(
        lambda index, pair: {"id": index, "raw": pair[0], "label": tf.cast(
            tf.io.decode_raw(pair[1], tf.uint8)[0], tf.int32)})
    with gzip.open(labels_path) if labels_path.endswith(".gz") else open(labels_path,
                                                                         "rb") as handle:
        top = max(handle.read()[8:])
    return ImageSplit(records, count, name, raw_shape=(rows, cols)), int(top)


def _list_idx(directory):
    splits, top = {}, 0
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images_path = find_file(directory, f"{prefix}-images-idx3-ubyte")
        labels_path = find_file(directory, f"{prefix}-labels-idx1-ubyte")
        if images_path and labels_path:
            splits[split], split_top = _idx_split(split, images_path, labels_path)
            top = max(top, split_top)
    return splits, [str(i) for i in range(top + 1)]


def _image_folder(directory, name, class_names=None):
    classes = class_names or sorted(
        entry for entry in os.listdir(directory) if os.path.isdir(os.path.join(directory, entry)))
    paths, labels, skipped = [], [], []
    for label, class_name in enumerate(classes):
        folder = os.path.join(directory, class_name)
        if not os.path.isdir(folder):
            continue
        names = sorted(os.listdir(folder))
        skipped += [os.path.join(folder, n) for n in names
                    if not n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith(".")]
        names = [n for n in names if n.lower().endswith(IMAGE_EXTENSIONS)]
        if not names and class_names is None:  # training would learn a class it never saw
            raise DataError(f"class folder {folder} holds no JPEG/PNG/BMP/GIF images: add "
                            "some or remove the folder")
        paths += [os.path.join(folder, n) for n in names]
        labels += [label] * len(names)
    if skipped:
        print(f"skipped {len(skipped)} files in {directory} that are not JPEG/PNG/BMP/GIF "
              f"images by their names, e.g. {skipped[0]}")
    if not paths:
        raise DataError(f"no JPEG/PNG/BMP/GIF images in the class folders of {directory}")
    return _from_slices(name, path=paths, label=np.array(labels, np.int32)), list(classes)


def _list_tfds(directory):
    import tensorflow_datasets as tfds

    builder = tfds.builder_from_directory(directory)
    splits = {}
    for split, candidates in (("train", ("train",)), ("val", ("validation", "val")),
                              ("test", ("test",))):
        for candidate in candidates:
            if candidate in builder.info.splits:
                dataset = builder.as_dataset(
                    split=candidate, shuffle_files=False,
                    decoders={"image": tfds.decode.SkipDecoding()})
                records = dataset.enumerate().map(lambda index, example: {
                    "id": index, "encoded": example["image"],
                    "label": tf.cast(example["label"], tf.int32)})
                splits[split] = ImageSplit(records, builder.info.splits[candidate].num_examples,
                                           split)
                break
    return splits, list(builder.info.features["label"].names)


def _parse_example(serialized):
    example = tf.io.parse_single_example(serialized, {
        "image": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64)})
    return {"encoded": example["image"], "label": tf.cast(example["label"], tf.int32)}


def _shard_records(paths):
    return shards.read_records(paths, _parse_example)


def _list_prepared(directory, config):
    """A `tfformer prepare` directory: its shards, checked against dataset.json (a shard
    cut short or missing is named, and its images count as bad)."""
    metadata = shards.read_metadata(directory, "image_classification")
    splits = {}
    for name, intact in shards.usable_shards(directory, metadata, config.max_bad_share,
                                             "images").items():
        splits[name] = ImageSplit(_shard_records([p for p, _ in intact]),
                                  sum(n for _, n in intact), name, files=tuple(intact),
                                  read_files=_shard_records)
    return splits, list(metadata["class_names"])


def list_images(directory, config):
    """({"train", "val", "test"} -> ImageSplit, class names); nothing is decoded yet."""
    if directory is None:
        arrays = builtin_data.generate(config.builtin_examples, config.image_size, config.seed)
        return ({split: from_arrays(split, images, labels)
                 for split, (images, labels) in arrays.items()},
                list(builtin_data.CLASS_NAMES))
    if not os.path.isdir(directory):
        raise DataError(f"data directory {directory} does not exist")
    tfds_root = find_tfds_directory(directory)
    if shards.is_prepared(directory):
        splits, names = _list_prepared(directory, config)
    elif find_file(directory, "train-images-idx3-ubyte"):
        splits, names = _list_idx(directory)
    elif tfds_root:
        splits, names = _list_tfds(tfds_root)
    elif os.path.isdir(os.path.join(directory, "train")):
        splits = {}
        splits["train"], names = _image_folder(os.path.join(directory, "train"), "train")
        for split, folder in (("val", "val"), ("val", "validation"), ("test", "test")):
            path = os.path.join(directory, folder)
            if os.path.isdir(path) and split not in splits:
                splits[split], _ = _image_folder(path, split, names)
    else:
        splits = {}
        splits["train"], names = _image_folder(directory, "train")
    if "train" not in splits:
        raise DataError(f"no training images in {directory}")
    if "val" not in splits:
        splits["train"], splits["val"] = splits["train"].held_out(config.val_fraction)
    return splits, names


# --- decoding ----------------------------------------------------------------------------

def _decoder(split, config):
    """record -> uint8 (S, S, 3)."""
    size = config.image_size

    def decode(record):
        if "path" in record:
            return decode_image(tf.io.read_file(record["path"]), config)
        if "encoded" in record:
            return decode_image(record["encoded"], config)
        if "raw" in record:
            pixels = tf.reshape(tf.io.decode_raw(record["raw"], tf.uint8),
                                (*split.raw_shape, 1))  # (H, W, 1)
            pixels = tf.repeat(pixels, 3, axis=-1)  # (H, W, 3)
        else:
            pixels = record["pixels"]
        if tuple(pixels.shape[:2]) == (size, size):
            return pixels
        return resize_pixels(pixels[None], config)[0]

    return decode


def _reason(record):
    contents = record["encoded"] if "encoded" in record else tf.io.read_file(record["path"])
    return image_problem(contents)


def image_source(split):
    """record -> a string naming it for the log: its path, or split and id."""
    def source(record):
        if "path" in record:
            return record["path"]
        return tf.strings.format(f"{split.name} image {{}}", record["id"])
    return source


def _decoded(split, records, config, total, log_path=None):
    """records -> (uint8 image (S, S, 3), int32 label), bad images skipped and named."""
    decode = _decoder(split, config)

    def pair(record):
        return decode(record), record["label"]

    if not split.can_fail:
        return records.map(pair, num_parallel_calls=tf.data.AUTOTUNE)
    size = config.image_size
    flagged = bad_examples.decode_or_flag(
        records, pair, lambda r: (tf.zeros((size, size, 3), tf.uint8), r["label"]), _reason,
        image_source(split))
    return bad_examples.skip_bad(flagged, total, config.max_bad_share,
                                 f"the {split.name} images", log_path)


def batches(split, config, batch_size=None):
    """(uint8 images (B, S, S, 3), int32 labels (B,)) of a split, in order, once. Under
    several workers tf.distribute shards it by example."""
    if split.count == 0:
        raise DataError(f"the {split.name} split is empty")
    decoded = _decoded(split, split.records, config, split.count)
    dataset = decoded.batch(batch_size or config.batch_size).prefetch(tf.data.AUTOTUNE)
    return example_stream.for_evaluation(dataset)


def training_start(split, config, consumed, worker=(0, 1), log_path=None):
    """The stream position of a run resumed after `consumed` training examples (of this
    worker's share), bad records named in `log_path` accounted for."""
    split, _ = split.share(*worker)
    bad = bad_examples.bad_ids(log_path) if log_path else set()
    return example_stream.position_after(consumed, split.records, split.count, config.seed,
                                         bad, split.shuffle_buffer(config))


def training_batches(split, config, num_classes, start=0, worker=(0, 1), log_path=None,
                     first_batch=0, offloaded=False):
    """The endless training stream from position `start`: (uint8 images (B, S, S, 3),
    augmented, one-hot labels (B, C)) with B the global batch size. With `worker`
    (index, count) it reads only that worker's share (`ImageSplit.share`) and is marked as
    sharded. `first_batch`: the index of its first batch in the whole stream, which the
    augmentation's random draws depend on. `offloaded`: for tf.data service workers, which
    split it (`data_service`)."""
    if split.count == 0:
        raise DataError("the training split is empty")
    split, _ = split.share(*worker)
    stream = example_stream.training_stream(split.records, split.count, config.seed, start,
                                            split.shuffle_buffer(config), offloaded)
    dataset = _decoded(split, stream, config, split.count, log_path)
    dataset = dataset.batch(config.batch_size, drop_remainder=True)
    if config.augment:
        dataset = _augmented(dataset, config, first_batch)
    dataset = one_hot(dataset, num_classes)
    if worker[1] > 1:
        dataset = example_stream.without_auto_sharding(dataset)
    return dataset.prefetch(tf.data.AUTOTUNE)


SEED_STRIDE = 1 << 20  # random draws one batch's augmentation may take, at most


def _augmented(batches, config, first_batch):
    """Batches augmented with random draws that depend only on each batch's index in the
    stream, so a resumed run augments as the uninterrupted one did: before each batch,
    every seed generator of the Keras augmentation layers is set from that index. One
    batch at a time, since the generators are shared state."""
    augment = augmenter(config)
    states = [v for v in augment.variables if v.path.endswith("seed_generator_state")]

    def apply(index, batch):
        images, labels = batch
        assigned = [state.assign(tf.stack([tf.constant(config.seed * 7919 + number, tf.int64),
                                           index * SEED_STRIDE]))
                    for number, state in enumerate(states)]
        with tf.control_dependencies(assigned):
            images = augment(tf.cast(images, tf.float32), training=True)
        return tf.cast(tf.clip_by_value(images, 0, 255), tf.uint8), labels

    return batches.enumerate(start=first_batch).map(apply)


def one_hot(dataset, num_classes):
    return dataset.map(lambda x, y: (x, tf.one_hot(y, num_classes)))


def augmenter(config):
    """Training-only augmentation with Keras preprocessing layers (run in tf.data)."""
    import keras

    layers = [keras.layers.RandomFlip("horizontal", seed=config.seed, name="flip")]
    if config.augment_crop_padding > 0:
        # Pad-and-crop as whole-pixel shifts with black borders, drawn per image. Keras'
        # RandomCrop draws one window per batch, and interpolated shifts blur small images.
        shift = config.augment_crop_padding / config.image_size
        layers.append(keras.layers.RandomTranslation(
            shift, shift, fill_mode="constant", interpolation="nearest", seed=config.seed,
            name="crop"))
    if config.augment_translate > 0:
        layers.append(keras.layers.RandomTranslation(
            config.augment_translate, config.augment_translate, fill_mode=config.augment_fill,
            seed=config.seed, name="translate"))
    if config.augment_zoom > 0:
        layers.append(keras.layers.RandomZoom(
            (-config.augment_zoom, config.augment_zoom), fill_mode=config.augment_fill,
            seed=config.seed, name="zoom"))
    if config.rand_augment_magnitude > 0:
        layers.append(keras.layers.RandAugment(
            value_range=(0, 255), factor=config.rand_augment_magnitude, seed=config.seed,
            name="rand_augment"))
    return keras.Sequential(layers, name="augment")
