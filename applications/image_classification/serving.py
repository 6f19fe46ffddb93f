"""The served image classifier: encoded image bytes in, labels and scores out.

`serving_default(image_bytes: string [B]) -> {logits [B, C], probabilities
[B, C], top_k_labels string [B, k], top_k_scores [B, k]}` decodes
(JPEG/PNG/BMP/GIF, grayscale or RGBA to RGB), resizes (and crops) as the
run's config says (`preprocessing`) and classifies in the graph. `pixels`
takes uint8 [B, H, W, 3]: at the model's size as they are (preprocessed),
any other size resized and cropped as the bytes are. `attention(image_bytes)` also returns `rollout`
[B, grid, grid]: the attention rollout from the class token (or, with mean
pooling, from all tokens) to each patch, computed in the same forward pass
as its probabilities. Bytes that are not an image fail that request
with TensorFlow's "Unknown image file format" error, which TF Serving
returns to the client; an empty batch gets empty outputs. Every export
carries TF Serving warm-up requests for each signature.
"""

import numpy as np
import tensorflow as tf

from applications.common.empty_batches import answer_empty_batches
from applications.image_classification.preprocessing import decode_image, resize_pixels
from tfformer.export import export_saved_model


class ImageClassificationServer(tf.Module):
    def __init__(self, model, class_names, config):
        super().__init__(name="image_classification")
        self.model = model
        self.class_names = tf.constant(list(class_names))
        self.config = config
        self.image_size = config.image_size
        self.top_k = min(config.top_k, len(class_names))
        self.grid = config.image_size // config.patch_size

    def _classify(self, images):
        return answer_empty_batches(
            lambda batch: self._outputs(self.model(batch, training=False)), images)

    def _outputs(self, logits):
        logits = tf.cast(logits, tf.float32)
        probabilities = tf.nn.softmax(logits, axis=-1)
        scores, indices = tf.math.top_k(probabilities, k=self.top_k)
        return {"logits": logits, "probabilities": probabilities, "top_k_scores": scores,
                "top_k_labels": tf.gather(self.class_names, indices)}

    def _decode(self, image_bytes):
        return tf.map_fn(lambda b: decode_image(b, self.config), image_bytes,
                         fn_output_signature=tf.TensorSpec(
                             [self.image_size, self.image_size, 3], tf.uint8))

    def _classify_with_rollout(self, images):
        logits, reach = self.model.classify_with_rollout(images)  # (B, C), (B, P)
        outputs = self._outputs(logits)
        outputs["rollout"] = tf.reshape(reach, [-1, self.grid, self.grid])
        return outputs

    @tf.function(autograph=False,
                 input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve(self, image_bytes):
        return self._classify(self._decode(image_bytes))

    @tf.function(autograph=False,
                 input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_attention(self, image_bytes):
        return answer_empty_batches(self._classify_with_rollout, self._decode(image_bytes))

    @tf.function(autograph=False,
                 input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="pixels")])
    def serve_pixels(self, pixels):
        return self._classify(self._prepare_pixels(pixels))

    def _prepare_pixels(self, pixels):
        """Pixels already at the model's size are taken as they are (already preprocessed,
        as training and evaluation data are); others are resized (and cropped) as bytes."""
        size = self.image_size
        shape = tf.shape(pixels)
        ready = tf.logical_and(tf.equal(shape[1], size), tf.equal(shape[2], size))
        return tf.cond(ready, lambda: tf.ensure_shape(pixels, [None, size, size, 3]),
                       lambda: resize_pixels(pixels, self.config))

    def signatures(self):
        return {"serving_default": self.serve, "pixels": self.serve_pixels,
                "attention": self.serve_attention}

    def warmup_requests(self):
        """For every signature, one image and eight of assorted formats and sizes."""
        rng = np.random.default_rng(0)
        pixels = rng.integers(0, 256, (8, self.image_size, self.image_size, 3), np.uint8)
        encoded = [tf.io.encode_png(pixels[0]).numpy(), tf.io.encode_jpeg(pixels[1]).numpy(),
                   tf.io.encode_png(rng.integers(0, 256, (300, 200, 1), np.uint8)).numpy(),
                   tf.io.encode_png(rng.integers(0, 256, (20, 40, 4), np.uint8)).numpy()] * 2
        requests = []
        for name in self.signatures():
            key, batch = ("pixels", pixels) if name == "pixels" else ("image_bytes", encoded)
            requests += [(name, {key: batch[:1]}), (name, {key: batch})]
        return requests


# How the export resizes, for Python clients (`tfformer evaluate` loads data at this size, with
# this kernel and crop, and matches classes by name): `tf.saved_model.load(path).constants`.
PREPROCESSING = ("image_size", "resize_method", "center_crop")


def export(server, base_dir):
    config = server.config
    constants = {"image_size": config.image_size, "resize_method": config.resize_method,
                 "center_crop": config.center_crop or 0.0,  # 0: no crop (a stretch)
                 "class_names": server.class_names}
    return export_saved_model(server, base_dir, server.signatures(),
                              warmup_requests=server.warmup_requests(), constants=constants)


def export_preprocessing(served):
    """{image_size, resize_method, center_crop} of a loaded export, or {} for an export
    made before they were stored."""
    constants = getattr(served, "constants", None)
    if constants is None:
        return {}
    values = {name: constants[name].numpy() for name in PREPROCESSING}
    return {"image_size": int(values["image_size"]),
            "resize_method": values["resize_method"].decode(),
            "center_crop": float(values["center_crop"]) or None}


def export_class_names(served):
    """The class names of a loaded export, in its output order, or None for an export made
    before they were stored."""
    constants = getattr(served, "constants", None)
    if constants is None or "class_names" not in constants:
        return None
    return [name.decode("utf-8") for name in constants["class_names"].numpy()]
