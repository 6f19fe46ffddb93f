"""Versioned, atomic SavedModel export in TF Serving's layout.

`base_dir/<version>/` with integer versions. The model is written to a hidden
temporary sibling first and renamed into place, so a server polling
`base_dir` never sees a half-written version. An export holds the signatures,
the variables and resources they read, and optionally TF Serving's warm-up
requests (`assets.extra/tf_serving_warmup_requests`); nothing else (no
optimizer state).
"""

import os
import shutil
import uuid

import numpy as np
import tensorflow as tf

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


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


def serving_root(module, signatures):
    """A new trackable holding just what `signatures` read: the variables their traced graphs
    capture, and `module`'s resources (lookup tables, tokenizer models) and assets.

    Why not save `module` itself: written with `tf.saved_model.save`, a `tf.Module` that wraps
    Keras 3 layers gets two copies of every variable in the MetaGraph. The checkpoint restores
    the copy behind Keras' variable wrapper while the signatures read the other, so TF
    Serving's loader (restore op, init op, `Session.run`) fails with "Could not find variable"
    (tensorflow/serving#2250, keras-team/keras#19274); only `tf.saved_model.load` hides it.
    Keras' `ExportArchive` avoids this by saving a bare root that holds the `tf.Variable`s its
    traced endpoints capture. We do the same here rather than through `ExportArchive`, which
    would re-wrap our traced `tf.function`s and drop plain `tf.saved_model.Asset`s. It also
    leaves out whatever serving never reads, such as the optimizer's slots.
    """
    functions = [signature if isinstance(signature, tf.types.experimental.ConcreteFunction)
                 else signature.get_concrete_function() for signature in signatures.values()]
    captured = {}
    for function in functions:
        for variable in function.variables:
            if not any(variable is known for known in captured.values()):
                captured[_unique_key(variable.name.split(":")[0], captured)] = variable
    kept = (tf.saved_model.experimental.TrackableResource, tf.saved_model.Asset)
    root = tf.Module(name="serving")
    # Keyed by name, so the checkpoint reads `captured_variables/<layer path>/...` whatever
    # order the functions were traced in.
    root.captured_variables = captured
    root.resources = [item for item in tf.train.TrackableView(module).descendants()
                      if isinstance(item, kept)]
    return root, dict(zip(signatures, functions))


def _unique_key(name, taken):
    key, count = name, 1
    while key in taken:
        key, count = f"{name}_{count}", count + 1
    return key


def write_warmup_requests(export_path, requests):
    """Writes TF Serving's warm-up file: one `PredictionLog` record per request.

    `requests` is a list of `(signature_name, {input_name: array-like})`. TF Serving replays
    them when it loads the version, before it answers clients, so the first real request does
    not pay for graph optimisation. Needs `tensorflow-serving-api` (the `apps` extra).
    """
    try:
        from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
    except ImportError as error:
        raise ImportError("writing warm-up requests needs tensorflow-serving-api: "
                          "pip install 'tfformer[apps]'") from error
    path = os.path.join(export_path, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature_name, inputs in requests:
            request = predict_pb2.PredictRequest()
            request.model_spec.signature_name = signature_name
            for name, value in inputs.items():
                value = np.asarray(value, dtype=object if _is_text(value) else None)
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def _is_text(value):
    flat = np.asarray(value, dtype=object).ravel()
    return flat.size > 0 and isinstance(flat[0], (bytes, str))


def export_saved_model(module, base_dir, signatures, options=None, warmup_requests=None,
                       constants=None, max_attempts=10):
    """Saves `module`'s signatures to `base_dir/<next version>/` atomically; returns the path.

    Args:
        module: the `tf.Module` (or Keras model) the signatures belong to; its variables,
            lookup tables and assets that the signatures use are saved (see `serving_root`).
        base_dir: the model's directory, e.g. `saved_models/translation`.
        signatures: dict of signature name -> concrete or traced tf.function.
        options: optional `tf.saved_model.SaveOptions`.
        warmup_requests: optional `[(signature_name, {input_name: array})]` written as TF
            Serving's warm-up file (see `write_warmup_requests`).
        constants: optional `{name: number or array}` for Python clients, read back as
            `tf.saved_model.load(path).constants[name]` (a speech model's sample rate, say).
            Signatures do not read them; a server restores and ignores them.
    """
    os.makedirs(base_dir, exist_ok=True)
    temporary = os.path.join(base_dir, f".tmp-{uuid.uuid4().hex}")
    try:
        root, concrete = serving_root(module, signatures)
        if constants:
            root.constants = {name: tf.Variable(value, trainable=False, name=name)
                              for name, value in constants.items()}
        tf.saved_model.save(root, temporary, signatures=concrete, options=options)
        if warmup_requests:
            write_warmup_requests(temporary, warmup_requests)
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
