"""Versioned, atomic SavedModel export in TF Serving's layout.

`base_dir/<version>/` with integer versions. The model is written to a hidden
temporary sibling first and renamed into place, so a server polling
`base_dir` never sees a half-written version.
"""

import os
import shutil
import uuid

import tensorflow as tf


def versions(base_dir):
    """Sorted integer versions present in `base_dir` (empty if none)."""
    if not os.path.isdir(base_dir):
        return []
    return sorted(int(name) for name in os.listdir(base_dir) if name.isdigit())


def latest_version_dir(path):
    """`path` itself if it holds a SavedModel, else its highest version."""
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    found = versions(path)
    if not found:
        raise FileNotFoundError(f"no SavedModel and no numbered versions in {path}")
    return os.path.join(path, str(found[-1]))


def export_saved_model(module, base_dir, signatures, options=None, max_attempts=10):
    """Saves `module` to `base_dir/<next version>/` atomically; returns the path.

    Args:
        module: a `tf.Module` (or Keras model) to save.
        base_dir: the model's directory, e.g. `saved_models/translation`.
        signatures: dict of signature name -> concrete or traced tf.function.
        options: optional `tf.saved_model.SaveOptions`.
    """
    os.makedirs(base_dir, exist_ok=True)
    temporary = os.path.join(base_dir, f".tmp-{uuid.uuid4().hex}")
    try:
        tf.saved_model.save(module, temporary, signatures=signatures, options=options)
        for _ in range(max_attempts):
            existing = versions(base_dir)
            target = os.path.join(base_dir, str(existing[-1] + 1 if existing else 1))
            try:
                # rename() is atomic on one filesystem and fails if another
                # export took this version number meanwhile: then try the next.
                os.rename(temporary, target)
                return target
            except OSError:
                if not os.path.exists(target):
                    raise
        raise RuntimeError(f"could not claim a new version in {base_dir}")
    finally:
        if os.path.exists(temporary):
            shutil.rmtree(temporary, ignore_errors=True)


def saved_model_ops(path):
    """The set of op names used anywhere in a SavedModel's graphs and functions."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as handle:
        proto.ParseFromString(handle.read())
    ops = set()
    for meta_graph in proto.meta_graphs:
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    return ops
