"""An image of any size as the model's uint8 (S, S, 3) input: the same ops in the export,
in evaluation and when image folders are read.

The config says how (`resize_method`, `center_crop`), so an imported checkpoint is fed as its
own pipeline fed it: Hugging Face's `ViTImageProcessor` stretches the whole image to S x S;
timm resizes the shorter side to floor(S / crop_pct) and cuts out the center (torchvision's
`Resize` then `CenterCrop`). Both resize with PIL, whose antialiased kernels TensorFlow's
`tf.image.resize(antialias=True)` shares; PIL resizes the width, rounds to uint8, then the
height, rounding halves up, and so do we. What remains is PIL's fixed-point arithmetic: a
pixel here may differ from PIL's by 1 (measured on the test images: bicubic 0-0.3% of
pixels, bilinear 0.3-5%, up to 29% when one side grows and the other shrinks). Scaling
and normalising happen inside the model.

>>> import numpy as np
>>> from applications.image_classification.config import ImageClassificationConfig
>>> config = ImageClassificationConfig(image_size=32, patch_size=8, center_crop=0.875)
>>> tuple(resize_pixels(np.zeros((2, 60, 90, 3), "uint8"), config).shape)
(2, 32, 32, 3)
"""

import math

import tensorflow as tf


def _round_to_pixels(images):
    """float -> the nearest of 0..255, halves up (PIL's rounding), still float."""
    return tf.clip_by_value(tf.floor(images + 0.5), 0, 255)


def _resize(images, height, width, method):
    """(B, H, W, 3) float -> (B, height, width, 3) float pixel values: the width first, then
    the height, each rounded as PIL does."""
    images = tf.image.resize(images, tf.stack([tf.shape(images)[1], width]), method=method,
                             antialias=True)
    images = tf.image.resize(_round_to_pixels(images), tf.stack([height, width]),
                             method=method, antialias=True)
    return _round_to_pixels(images)


def _shorter_side_then_center(images, size, center_crop, method):
    """(B, H, W, 3) float -> (B, size, size, 3) pixel values: the shorter side resized to
    floor(size / center_crop) (the longer one in proportion, rounded down, as torchvision),
    then the center cut out (offsets rounded half to even, as torchvision's `round`)."""
    scale = math.floor(size / center_crop)
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    short, long = tf.minimum(height, width), tf.maximum(height, width)
    new_long = (scale * long) // short
    new_height = tf.where(height <= width, scale, new_long)
    new_width = tf.where(height <= width, new_long, scale)
    resized = _resize(images, new_height, new_width, method)
    top = tf.cast(tf.round(tf.cast(new_height - size, tf.float32) / 2), tf.int32)
    left = tf.cast(tf.round(tf.cast(new_width - size, tf.float32) / 2), tf.int32)
    return resized[:, top:top + size, left:left + size, :]


def resize_pixels(pixels, config):
    """uint8 RGB (B, H, W, 3) -> uint8 (B, S, S, 3), as `config` says."""
    images = tf.cast(pixels, tf.float32)
    size = config.image_size
    if config.center_crop is None:
        images = _resize(images, size, size, config.resize_method)
    else:
        images = _shorter_side_then_center(images, size, config.center_crop,
                                           config.resize_method)
    return tf.ensure_shape(tf.cast(images, tf.uint8), [None, size, size, 3])


def decode_image(image_bytes, config):
    """Encoded bytes (scalar string) -> uint8 (S, S, 3). Any of JPEG/PNG/BMP/GIF (the first
    frame of an animation); grayscale and RGBA become RGB."""
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    return resize_pixels(image[None], config)[0]


_MAGIC = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n", "gif87": b"GIF87a",
          "gif89": b"GIF89a", "bmp": b"BM"}


def _holds(data, pattern):
    """Whether uint8 `data` (N,) holds the bytes `pattern` in a row."""
    size = tf.shape(data)[0] - len(pattern) + 1
    found = tf.ones(tf.maximum(size, 0), tf.bool)
    for offset, value in enumerate(pattern):
        found &= tf.equal(data[offset:offset + tf.maximum(size, 0)], value)
    return tf.reduce_any(found)


def image_problem(contents):
    """Why encoded bytes (scalar string) do not decode, as a sentence; never raises. Asked
    only after decoding failed: it names the common damage (an empty file, another kind of
    file, a JPEG or PNG cut short), else says the data is corrupt."""
    def starts(kind):
        magic = _MAGIC[kind]
        return tf.equal(tf.strings.substr(contents, 0, len(magic)), magic)

    length = tf.strings.length(contents)
    tail = tf.io.decode_raw(tf.strings.substr(contents, tf.maximum(length - 1024, 0), 1024),
                            tf.uint8)
    known = starts("jpeg") | starts("png") | starts("gif87") | starts("gif89") | starts("bmp")
    reasons = [
        (tf.equal(length, 0), "the file is empty"),
        (tf.logical_not(known), "not a JPEG, PNG, GIF or BMP image"),
        (starts("jpeg") & tf.logical_not(_holds(tail, b"\xff\xd9")),
         "a JPEG cut short (no end-of-image marker)"),
        (starts("png") & tf.logical_not(_holds(tail, b"IEND")), "a PNG cut short (no IEND chunk)"),
    ]
    reason = tf.constant("corrupt image data")
    for condition, text in reversed(reasons):
        reason = tf.where(condition, text, reason)
    return reason
