"""Starting a ViT from another run's weights (`train --init-from RUN`): a trained or imported
classifier (`tfformer import image_classification`) fine-tuned on other data.

The backbone is kept (a LoRA run's factors merged into its kernels). The head is kept when
the data has the checkpoint's classes (in any order), and otherwise replaced by a new,
zero-initialised one (as timm and Hugging Face reset a classifier). At another image size
the position table is resized to the new grid (bicubic, as timm's `resample_abs_pos_embed`);
the class token's position stays.
"""

import os

import numpy as np
import tensorflow as tf

from applications.common.restore import read_run, restore_weights
from applications.image_classification.config import ImageClassificationConfig
from applications.image_classification.model import build_vit


def resize_positions(table, old_grid, new_grid):
    """(old_grid^2, D) position table -> (new_grid^2, D), resized as an image."""
    grid = np.asarray(table, np.float32).reshape(1, old_grid, old_grid, -1)
    resized = tf.image.resize(grid, (new_grid, new_grid), method="bicubic", antialias=True)
    return resized.numpy().reshape(new_grid * new_grid, -1)


def _merged_weights(model):
    """{path after the model's name: value}, LoRA factors merged into their kernels."""
    values = {w.path: w.numpy() for w in model.weights if "lora_kernel" not in w.path}
    for layer in model._flatten_layers(include_self=False):
        if getattr(layer, "lora_enabled", False):
            values[layer._kernel.path] = layer.kernel.numpy()  # kernel + a @ b, as served
    return {path.split("/", 1)[1]: value for path, value in values.items()}


def origin(init_from):
    """What a fine-tuned run's run_info.json records of where it started: {} for none."""
    if not init_from:
        return {}
    _, info = read_run(init_from, ImageClassificationConfig)
    return {"initialized_from": os.path.abspath(init_from),
            **({"pretrained": info["imported_from"]} if "imported_from" in info else {})}


def start_from(model, config, class_names, init_from):
    """Loads `init_from`'s weights into `model` (built for `config` and `class_names`);
    returns the lines that say what was kept and what changed."""
    source_config, info = read_run(init_from, ImageClassificationConfig, needs=["class_names"])
    source = build_vit(source_config, len(info["class_names"]))
    weights_file = restore_weights(source, init_from, "best")
    notes = [f"starting from {os.path.join(init_from, weights_file)}"]
    keep_head = sorted(info["class_names"]) == sorted(class_names)
    if keep_head and list(info["class_names"]) != list(class_names):
        notes.append("the head's classes reordered to the data's")
    if not keep_head:
        notes.append(f"new head: {len(class_names)} classes ({', '.join(class_names[:5])}"
                     f"{', ...' if len(class_names) > 5 else ''}) instead of the checkpoint's "
                     f"{len(info['class_names'])}")
        model.head.kernel.assign(tf.zeros_like(model.head.kernel))
        model.head.bias.assign(tf.zeros_like(model.head.bias))
    old_grid = source_config.image_size // source_config.patch_size
    new_grid = config.image_size // config.patch_size
    if old_grid != new_grid:
        notes.append(f"position table resized from {old_grid}x{old_grid} to "
                     f"{new_grid}x{new_grid} patches ({source_config.image_size} -> "
                     f"{config.image_size} pixels)")
    ours = {w.path.split("/", 1)[1]: w for w in model.weights}
    for path, value in _merged_weights(source).items():
        if path.startswith("head/") and not keep_head:
            continue
        if path == "patch_embedding/position_embeddings" and old_grid != new_grid:
            value = resize_positions(value, old_grid, new_grid)
        if keep_head and path.startswith("head/"):  # the data's class order
            order = [list(info["class_names"]).index(name) for name in class_names]
            value = value[..., order]
        ours[path].assign(value)
    return notes
