"""Checks every export must pass: it answers in a fresh process that imports only
what TF Serving has (TensorFlow and tf-text), and it uses no other ops."""

import base64
import json
import os
import subprocess
import sys
import textwrap

_FRESH_CALL = textwrap.dedent("""
    import base64, json, sys
    import tensorflow as tf
    import tensorflow_text  # noqa: F401
    path, signature, name = sys.argv[1], sys.argv[2], sys.argv[3]
    values = json.loads(sys.stdin.read())
    if sys.argv[4] == "binary":
        values = [base64.b64decode(v) for v in values]
    loaded = tf.saved_model.load(path)
    outputs = loaded.signatures[signature](**{name: tf.constant(values)})
    print(json.dumps({k: v.numpy().tolist() for k, v in outputs.items()},
                     default=lambda b: b.decode("utf-8", "replace")))
    imported = {m.split(".")[0] for m in sys.modules}
    assert not imported & {"tfformer", "applications"}, "the export needed project code"
""")

def _environment():
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.pop("PYTHONPATH", None)
    return env


def call_in_fresh_process(path, input_name, values, signature="serving_default"):
    """Loads the export in a new interpreter and calls it; returns its outputs.

    `values` is a JSON-able list; a list of bytes is sent base64-encoded.
    """
    binary = bool(values) and isinstance(values[0], bytes)
    if binary:
        values = [base64.b64encode(v).decode("ascii") for v in values]
    result = subprocess.run(
        [sys.executable, "-c", _FRESH_CALL, path, signature, input_name,
         "binary" if binary else "json"],
        input=json.dumps(values), capture_output=True, text=True, timeout=300,
        env=_environment(), cwd="/")
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


_UNKNOWN_OPS = textwrap.dedent("""
    import json, sys
    ops = set(json.loads(sys.argv[1]))
    import tensorflow as tf
    from tensorflow.python.framework import op_def_registry
    core = {op for op in ops if op_def_registry.get(op) is not None}
    import tensorflow_text  # noqa: F401
    text = {op for op in ops - core if op_def_registry.get(op) is not None}
    print(json.dumps({"unknown": sorted(ops - core - text), "tf_text": sorted(text)}))
""")


def classify_ops(ops):
    """{"unknown": [...], "tf_text": [...]} for op names, checked in a fresh process."""
    result = subprocess.run(
        [sys.executable, "-c", _UNKNOWN_OPS, json.dumps(sorted(ops))],
        capture_output=True, text=True, timeout=300, env=_environment(), cwd="/")
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
