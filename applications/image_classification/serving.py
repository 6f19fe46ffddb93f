"""The served image classifier: encoded image bytes in, labels and scores out.

`serving_default(image_bytes: string [B]) -> {probabilities [B, C],
top_k_labels string [B, k], top_k_scores [B, k]}` decodes (JPEG/PNG/BMP/GIF,
grayscale or RGBA to RGB), resizes and classifies in the graph. `pixels`
takes uint8 [B, H, W, 3]. Bytes that are not an image fail that request
with TensorFlow's "Unknown image file format" error, which TF Serving
returns to the client.
"""

import tensorflow as tf

from applications.image_classification.data import decode_image, resize_pixels
from tfformer.export import export_saved_model


class ImageClassificationServer(tf.Module):
    def __init__(self, model, class_names, config):
        super().__init__(name="image_classification")
        self.model = model
        self.class_names = tf.constant(list(class_names))
        self.image_size = config.image_size
        self.top_k = min(config.top_k, len(class_names))

    def _classify(self, images):
        logits = self.model(images, training=False)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        scores, indices = tf.math.top_k(probabilities, k=self.top_k)
        return {"probabilities": probabilities, "top_k_scores": scores,
                "top_k_labels": tf.gather(self.class_names, indices)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve(self, image_bytes):
        images = tf.map_fn(lambda b: decode_image(b, self.image_size), image_bytes,
                           fn_output_signature=tf.TensorSpec(
                               [self.image_size, self.image_size, 3], tf.uint8))
        return self._classify(images)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="pixels")])
    def serve_pixels(self, pixels):
        return self._classify(resize_pixels(pixels, self.image_size))


def export(server, base_dir):
    signatures = {"serving_default": server.serve, "pixels": server.serve_pixels}
    return export_saved_model(server, base_dir, signatures)
