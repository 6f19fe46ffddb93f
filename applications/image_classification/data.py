"""Image classification data: image folders, MNIST-format IDX files, TFDS, built in.

`load_images(directory, config)` returns {"train"|"val"|"test": (images, labels)}
and the class names. Layouts:

- an image folder: one subfolder per class holding JPEG/PNG/BMP/GIF files;
  `train/` and `val/` (or `validation/`) subfolders, each laid out that way,
  give separate splits;
- MNIST-format IDX files: `train-images-idx3-ubyte[.gz]` and
  `train-labels-idx1-ubyte[.gz]` (and `t10k-*` as the test split);
- a TFDS dataset directory already on disk with `image` and `label` features.

Without a validation split the last `val_fraction` of training is held out.
Images are decoded with TensorFlow's own decoders, the same ops the export
uses.
"""

import gzip
import os
import struct

import numpy as np
import tensorflow as tf

from applications.common.text_files import (
    READ_ERRORS,
    DataError,
    find_file,
    find_tfds_directory,
    read_error,
)
from applications.image_classification import builtin_data
from applications.image_classification.preprocessing import decode_image, resize_pixels

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def _read_idx(path, magic):
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            content = handle.read()
    except READ_ERRORS as error:
        raise read_error(path, error) from None
    if len(content) < 8 or struct.unpack(">I", content[:4])[0] != magic:
        raise DataError(f"{path} is not an IDX file with magic number {magic}")
    dims = content[3]
    shape = struct.unpack(f">{dims}I", content[4:4 + 4 * dims])
    data = np.frombuffer(content, dtype=np.uint8, offset=4 + 4 * dims)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path}: header says {shape} but holds {data.size} values")
    return data.reshape(shape)


def _load_idx(directory, config):
    splits = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images_path = find_file(directory, f"{prefix}-images-idx3-ubyte")
        labels_path = find_file(directory, f"{prefix}-labels-idx1-ubyte")
        if images_path and labels_path:
            images = _read_idx(images_path, 2051)
            labels = _read_idx(labels_path, 2049).astype(np.int32)
            if len(images) != len(labels):
                raise DataError(f"{images_path} has {len(images)} images but {labels_path} "
                                f"has {len(labels)} labels")
            rgb = np.repeat(images[..., None], 3, axis=-1)
            splits[split] = (_resize_array(rgb, config), labels)
    names = [str(i) for i in range(int(splits["train"][1].max()) + 1)]
    return splits, names


def _resize_array(images, config, batch=2048):
    if images.shape[1:3] == (config.image_size, config.image_size):
        return images
    return np.concatenate([resize_pixels(tf.constant(images[i:i + batch]), config).numpy()
                           for i in range(0, len(images), batch)])


def _image_folder(directory, config, class_names=None):
    classes = class_names or sorted(
        entry for entry in os.listdir(directory) if os.path.isdir(os.path.join(directory, entry)))
    images, labels, skipped = [], [], []
    for label, name in enumerate(classes):
        folder = os.path.join(directory, name)
        if not os.path.isdir(folder):
            continue
        names = sorted(os.listdir(folder))
        skipped += [os.path.join(folder, n) for n in names
                    if not n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith(".")]
        names = [n for n in names if n.lower().endswith(IMAGE_EXTENSIONS)]
        if not names and class_names is None:  # training would learn a class it never saw
            raise DataError(f"class folder {folder} holds no JPEG/PNG/BMP/GIF images: add "
                            "some or remove the folder")
        for file_name in names:
            path = os.path.join(folder, file_name)
            try:
                with open(path, "rb") as handle:
                    images.append(decode_image(handle.read(), config).numpy())
            except (OSError, tf.errors.InvalidArgumentError) as error:
                message = getattr(error, "message", str(error)).splitlines()[0]
                raise DataError(f"cannot decode image {path}: {message}") from None
            labels.append(label)
    if skipped:
        print(f"skipped {len(skipped)} files in {directory} that are not JPEG/PNG/BMP/GIF "
              f"images by their names, e.g. {skipped[0]}")
    if not images:
        raise DataError(f"no JPEG/PNG/BMP/GIF images in the class folders of {directory}")
    return (np.stack(images), np.array(labels, np.int32)), list(classes)


def _load_tfds(directory, config):
    import tensorflow_datasets as tfds

    builder = tfds.builder_from_directory(directory)
    names = builder.info.features["label"].names
    splits = {}
    for split, candidates in (("train", ("train",)), ("val", ("validation", "val")),
                              ("test", ("test",))):
        for candidate in candidates:
            if candidate in builder.info.splits:
                examples = list(tfds.as_numpy(builder.as_dataset(split=candidate)))
                pixels = np.stack([e["image"] for e in examples])
                if pixels.shape[-1] == 1:
                    pixels = np.repeat(pixels, 3, axis=-1)
                splits[split] = (_resize_array(pixels, config),
                                 np.array([e["label"] for e in examples], np.int32))
                break
    return splits, list(names)


def _hold_out(splits, fraction):
    images, labels = splits["train"]
    count = max(1, int(len(labels) * fraction))
    splits["val"] = (images[-count:], labels[-count:])
    splits["train"] = (images[:-count], labels[:-count])


def load_images(directory, config):
    """({"train", "val", "test"} -> (uint8 images (N, S, S, 3), int32 labels), class names)."""
    if directory is None:
        splits = builtin_data.generate(config.builtin_examples, config.image_size, config.seed)
        return splits, list(builtin_data.CLASS_NAMES)
    if not os.path.isdir(directory):
        raise DataError(f"data directory {directory} does not exist")
    tfds_root = find_tfds_directory(directory)
    if find_file(directory, "train-images-idx3-ubyte"):
        splits, names = _load_idx(directory, config)
    elif tfds_root:
        splits, names = _load_tfds(tfds_root, config)
    elif os.path.isdir(os.path.join(directory, "train")):
        splits, names = {}, None
        splits["train"], names = _image_folder(os.path.join(directory, "train"), config)
        for split, folder in (("val", "val"), ("val", "validation"), ("test", "test")):
            path = os.path.join(directory, folder)
            if os.path.isdir(path) and split not in splits:
                splits[split], _ = _image_folder(path, config, names)
    else:
        train, names = _image_folder(directory, config)
        splits = {"train": train}
    if "train" not in splits:
        raise DataError(f"no training images in {directory}")
    if "val" not in splits:
        _hold_out(splits, config.val_fraction)
    splits.setdefault("test", (np.zeros((0, config.image_size, config.image_size, 3), np.uint8),
                               np.zeros((0,), np.int32)))
    return splits, names


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


def make_dataset(images, labels, config, training, num_classes):
    """tf.data of (uint8 images (B, S, S, 3), one-hot labels (B, C))."""
    if len(labels) == 0:
        raise DataError("an empty split cannot be batched")
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if training:
        dataset = dataset.shuffle(min(len(labels), 20000), seed=config.seed).repeat()
    dataset = dataset.batch(config.batch_size, drop_remainder=training)
    if training and config.augment:
        augment = augmenter(config)
        dataset = dataset.map(
            lambda x, y: (tf.cast(tf.clip_by_value(augment(tf.cast(x, tf.float32), training=True),
                                                   0, 255), tf.uint8), y),
            num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.map(lambda x, y: (x, tf.one_hot(y, num_classes)))
    return dataset.prefetch(tf.data.AUTOTUNE)
