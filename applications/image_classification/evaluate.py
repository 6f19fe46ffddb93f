"""Top-1 / top-5 accuracy and a confusion-matrix plot, through the export."""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from applications.common import bad_examples
from applications.common.export_client import load_export
from applications.image_classification import data
from applications.image_classification.serving import export_class_names, export_preprocessing


def confusion_matrix(labels, predictions, num_classes):
    return tf.math.confusion_matrix(labels, predictions, num_classes=num_classes).numpy()


def plot_confusion_matrix(matrix, class_names, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(4, 0.5 * len(class_names) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    axes.set_yticks(range(len(class_names)), class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for (row, col), count in np.ndenumerate(matrix):
        axes.text(col, row, int(count), ha="center", va="center", fontsize=8,
                  color="white" if count > matrix.max() / 2 else "black")
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def scores(probabilities, labels, k=5):
    top = np.argsort(-probabilities, axis=1)
    k = min(k, probabilities.shape[1])
    return {"top1": 100.0 * float(np.mean(top[:, 0] == labels)),
            "top5": 100.0 * float(np.mean((top[:, :k] == labels[:, None]).any(axis=1)))}


def classify_split(pixels_fn, split, config, batch_size=256):
    """(probabilities (N, C), labels (N,)) for a split streamed from disk (bad images
    skipped and named)."""
    probabilities, labels = [], []
    for images, batch_labels in data.batches(split, config, batch_size):
        probabilities.append(pixels_fn(images)["probabilities"].numpy())
        labels.append(batch_labels.numpy())
    if not labels:
        raise ValueError(f"no image of the {split.name} split could be decoded")
    return np.concatenate(probabilities), np.concatenate(labels)


def _export_classes(served, class_names, labels):
    """(class names, labels) in the export's class order: the data's classes matched by name
    (an imported model's labels need not sort as folders do)."""
    names = export_class_names(served)
    if names is None:  # an older export: matched by position
        return class_names, labels
    missing = [name for name in class_names if name not in names]
    if missing:
        raise ValueError(f"the data's classes {missing[:5]} are not among the export's "
                         f"{len(names)} classes ({', '.join(names[:5])}, ...)")
    index = {name: i for i, name in enumerate(names)}
    return names, np.array([index[class_names[label]] for label in labels], np.int32)


def evaluate(model_path, data_dir, config, split="test", output=None):
    served = load_export(model_path, "image_bytes")  # another kind of export: named at once
    # The images are loaded as the export resizes and crops them (its pixels signature takes
    # them as they are), whatever the preset says.
    config = dataclasses.replace(config, **export_preprocessing(served))
    splits, class_names = data.list_images(data_dir, config)
    if split not in splits or splits[split].count == 0:
        raise ValueError(f"the {split} split of {data_dir or 'the built-in data'} is empty")
    pixels = served.signatures["pixels"]
    with bad_examples.bad_data_errors():
        probabilities, labels = classify_split(lambda x: pixels(pixels=x), splits[split],
                                               config)
    class_names, labels = _export_classes(served, class_names, labels)
    result = scores(probabilities, labels)
    if output:
        matrix = confusion_matrix(labels, probabilities.argmax(1), len(class_names))
        plot_confusion_matrix(matrix, class_names, output)
    result["summary"] = (f"{split}: top-1 {result['top1']:.2f}%, top-5 {result['top5']:.2f}% on "
                         f"{len(labels)} images"
                         + (f"; confusion matrix in {output}" if output else ""))
    return result
