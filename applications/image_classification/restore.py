"""A trained ViT back from its run directory, for Python use and re-export.

>>> classifier = load("runs/image_classification")  # doctest: +SKIP
>>> classifier.classify([open("star.png", "rb").read()])  # doctest: +SKIP
[[('star', 0.97), ('circle', 0.01), ('ring', 0.01)]]
"""

import numpy as np
import tensorflow as tf

from applications.common.quantization import quantize_for_export
from applications.common.restore import read_run, restore_weights
from applications.image_classification import serving
from applications.image_classification.config import ImageClassificationConfig
from applications.image_classification.model import build_vit


class TrainedClassifier:
    """A run's model with its class names and config; `server` is what an export serves."""

    def __init__(self, config, model, server, class_names, weights):
        self.config, self.model, self.server = config, model, server
        self.class_names, self.weights = class_names, weights

    def classify(self, images):
        """Encoded images (bytes) or uint8 pixels (B, H, W, 3) -> per image, the top-k
        (label, probability) pairs, as the export answers."""
        if len(images) and isinstance(images[0], bytes):
            outputs = self.server.serve(tf.constant(list(images)))
        else:
            outputs = self.server.serve_pixels(tf.constant(np.asarray(images, np.uint8)))
        labels, scores = outputs["top_k_labels"].numpy(), outputs["top_k_scores"].numpy()
        return [[(label.decode("utf-8"), float(score)) for label, score in zip(row, values)]
                for row, values in zip(labels, scores)]

    def export(self, base_dir):
        return serving.export(self.server, base_dir)


def load(workdir="runs/image_classification", weights=None, quantize=None):
    """The classifier trained in `workdir`, finished or interrupted; `weights` "best" or
    "last" (default the run's `export_weights`); `quantize` "none", "int8" or "int4" (default
    the run's `quantize`; see `applications.common.quantization`)."""
    config, info = read_run(workdir, ImageClassificationConfig, needs=["class_names"])
    model = build_vit(config, len(info["class_names"]))
    chosen = restore_weights(model, workdir, weights or config.export_weights)
    quantize_for_export(model, quantize or config.quantize)
    server = serving.ImageClassificationServer(model, info["class_names"], config)
    return TrainedClassifier(config, model, server, info["class_names"],
                             chosen)
