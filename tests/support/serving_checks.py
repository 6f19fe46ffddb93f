"""Checks every export must pass: it answers in a fresh process that imports only what TF
Serving has (TensorFlow and tf-text), through TF Serving's own loader, with the same outputs as
the Python object-graph path; and it uses no other ops.

"Fresh" means a separate interpreter that never imported project code. One such interpreter
per test process serves every export that process checks, each in its own graph and session,
as one model server loads model after model (`_ServingProcess`)."""

import json
import os
import queue
import subprocess
import sys
import tempfile
import textwrap
import threading

import numpy as np

from tests.support.array_json import decode, encode

FRESH_SERVING = os.path.join(os.path.dirname(__file__), "fresh_serving.py")
README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")

# TensorFlow's own command-line runner, with tf-text's ops registered as TF Serving links them.
SAVED_MODEL_CLI = ("import sys, tensorflow_text; from tensorflow.python.tools import "
                   "saved_model_cli; sys.exit(saved_model_cli.main())")


def _environment():
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.pop("PYTHONPATH", None)
    return env


CARRY_STATE = "carry_state"


class _ServingProcess:
    """The interpreter that runs `fresh_serving.py`: started on first use, once per test
    process, and restarted if it dies. It loads export after export as a model server does,
    and imports nothing but TensorFlow and tf-text (each job checks), so what it answers is
    what a fresh process answers, without paying TensorFlow's import (about 7 s) per export."""

    process = None

    @classmethod
    def answer(cls, job, timeout=600):
        if cls.process is None or cls.process.poll() is not None:
            cls._start()
        process = cls.process
        process.stdin.write(json.dumps(job) + "\n")
        process.stdin.flush()
        try:
            line = cls.lines.get(timeout=timeout)
        except queue.Empty:
            process.kill()
            raise AssertionError(f"no answer in {timeout} s from {job['path']}") from None
        if line is None:
            process.wait()
            cls.errors.seek(0)
            raise AssertionError(f"the serving process died (exit {process.returncode}):\n"
                                 + cls.errors.read()[-3000:])
        answer = json.loads(line)
        assert "job_error" not in answer, answer.get("job_error")
        return answer

    @classmethod
    def _start(cls):
        cls.errors = tempfile.TemporaryFile("w+")
        cls.process = subprocess.Popen(
            [sys.executable, FRESH_SERVING], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=cls.errors, text=True, env=_environment(), cwd="/")
        cls.lines = queue.Queue()

        def read(stdout, lines):  # only answer lines; None when the process ends
            for line in stdout:
                if line.startswith("ANSWER "):
                    lines.put(line[len("ANSWER "):])
            lines.put(None)

        threading.Thread(target=read, args=(cls.process.stdout, cls.lines), daemon=True).start()


def serve_both_ways(path, requests):
    """Runs `requests` ([(signature, {input: value})]) on the export in a process that
    imports only TensorFlow and tf-text (see `_ServingProcess`), through TF Serving's session
    path and through `tf.saved_model.load`. A request given as
    `(signature, inputs, CARRY_STATE)` also gets the previous request's `state_*` outputs.

    Returns, per request, `{"session": outputs, "object_graph": outputs}`, each outputs a dict
    of numpy arrays, or `{"error": type, "message": its text}` when the request failed.
    """
    job = {"path": os.path.abspath(path),
           "requests": [{"signature": signature,
                         "inputs": {name: encode(value) for name, value in inputs.items()},
                         "carry_state": CARRY_STATE in flags}
                        for signature, inputs, *flags in requests]}
    answers = _ServingProcess.answer(job)
    return [{way: outputs if "error" in outputs else
             {name: decode(value) for name, value in outputs.items()}
             for way, outputs in answer.items()} for answer in answers]


def assert_same_outputs(session, object_graph, tolerance=1e-4):
    """String outputs exactly equal, numbers within `tolerance`, errors of the same kind."""
    if "error" in session or "error" in object_graph:
        assert session.get("error") == object_graph.get("error"), (session, object_graph)
        return
    assert sorted(session) == sorted(object_graph)
    for name, value in session.items():
        other = object_graph[name]
        assert value.shape == other.shape, (name, value.shape, other.shape)
        if value.dtype == object:
            assert value.tolist() == other.tolist(), name
        else:
            np.testing.assert_allclose(value, other, atol=tolerance, rtol=0, err_msg=name)


def _serving_signatures(path):
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as handle:
        proto.ParseFromString(handle.read())
    (meta_graph,) = [m for m in proto.meta_graphs if "serve" in m.meta_info_def.tags]
    return meta_graph.signature_def


def readme_rest_requests(model_name, export_path, files=None):
    """README's `curl -d BODY .../v1/models/<model_name>:predict` requests as `(signature,
    {input: array})`, built as TF Serving's REST API builds tensors: row ("instances") or
    columnar ("inputs") format, `{"b64": ...}` decoded to bytes, values cast to the dtype the
    signature declares. An input name the signature lacks raises KeyError.

    `files` maps a file name in `$(base64 -w0 FILE)` to the bytes to send for it.
    """
    import base64
    import re

    import tensorflow as tf

    signatures = _serving_signatures(export_path)
    requests = []
    pattern = (r"curl -d (?:'(?P<single>[^']*)'|\"(?P<double>(?:[^\"\\]|\\.)*)\")\s*\\?\s*"
               r"http://localhost:8501/v1/models/(?P<model>\w+):predict")
    with open(README, encoding="utf-8") as handle:
        readme = handle.read()
    for match in re.finditer(pattern, readme):
        if match["model"] != model_name:
            continue
        body = match["single"]
        if body is None:  # a double-quoted shell string: unescape, run the base64 substitutions
            body = re.sub(r"\\(.)", r"\1", match["double"])
            body = re.sub(r"\$\(base64 -w0 ([^)]+)\)",
                          lambda m: base64.b64encode(files[m[1]]).decode("ascii"), body)
        request = json.loads(body)
        name = request.get("signature_name", "serving_default")
        signature = signatures[name]
        if "instances" in request:
            rows = request["instances"]
            if not isinstance(rows[0], dict) or set(rows[0]) == {"b64"}:
                (only,) = signature.inputs
                rows = [{only: row} for row in rows]
            columns = {key: [row[key] for row in rows] for key in rows[0]}
        else:
            columns = request["inputs"]
            if not isinstance(columns, dict):
                (only,) = signature.inputs
                columns = {only: columns}

        def tensor(value):
            if isinstance(value, dict):
                return base64.b64decode(value["b64"])
            if isinstance(value, list):
                return [tensor(item) for item in value]
            return value.encode("utf-8") if isinstance(value, str) else value

        inputs = {}
        for key, value in columns.items():
            dtype = tf.dtypes.as_dtype(signature.inputs[key].dtype)
            converted = tensor(value)
            inputs[key] = (np.array(converted, dtype=object) if dtype == tf.string
                           else np.array(converted, dtype=dtype.as_numpy_dtype))
        requests.append((name, inputs))
    return requests


def read_warmup_requests(path):
    """TF Serving's warm-up records of an export as `[(signature, {input: array})]`."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    from tfformer.export import WARMUP_FILE

    requests = []
    for record in tf.data.TFRecordDataset(os.path.join(path, WARMUP_FILE)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        requests.append((request.model_spec.signature_name or "serving_default",
                         {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}))
    return requests


def signature_names(path):
    """The signature keys of a SavedModel's serving MetaGraph."""
    return set(_serving_signatures(path)) - {"__saved_model_init_op"}


def warmup_and_readme_requests(path, model_name, files=None):
    """The export's warm-up records, which must reach every signature, and README's REST
    bodies for `model_name` (see `readme_rest_requests`): (warm-up requests, REST requests)."""
    warmup = read_warmup_requests(path)
    assert {signature for signature, *_ in warmup} == signature_names(path)
    return warmup, readme_rest_requests(model_name, path, files)


def serve_groups_in_session(path, groups):
    """`serve_in_session` for several tests' requests at once: the serving process loads the
    export once. `groups` maps a name to its requests (each group must not carry state from
    the one before it); returns the name mapped to its answers."""
    assert all(CARRY_STATE not in requests[0][2:] for requests in groups.values() if requests)
    answers = serve_in_session(path, [request for requests in groups.values()
                                      for request in requests])
    answered, start = {}, 0
    for name, requests in groups.items():
        answered[name], start = answers[start:start + len(requests)], start + len(requests)
    return answered


def serve_every_signature(path, requests):
    """`serve_in_session` for requests that must reach every signature of the export."""
    assert {signature for signature, *_ in requests} == signature_names(path)
    return serve_in_session(path, requests)


def serve_in_session(path, requests):
    """Session-path outputs of every request, after checking they equal the object graph's."""
    answers = serve_both_ways(path, requests)
    for answer in answers:
        assert_same_outputs(answer["session"], answer["object_graph"])
    return [answer["session"] for answer in answers]


def call_in_fresh_process(path, input_name, values, signature="serving_default"):
    """Calls one signature with one input through TF Serving's loader in a new interpreter.

    Returns the outputs as lists (strings decoded as UTF-8), after checking that the
    object-graph path answers the same.
    """
    (outputs,) = serve_in_session(path, [(signature, {input_name: values})])
    assert "error" not in outputs, outputs
    return {name: np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(value)
            .tolist() if value.dtype == object else value.tolist()
            for name, value in outputs.items()}


def saved_model_cli_run(path, signature, input_exprs=None, inputs=None):
    """`saved_model_cli run` on the export (tf-text ops registered); returns its stdout."""
    command = [sys.executable, "-c", SAVED_MODEL_CLI, "run", "--dir", os.path.abspath(path),
               "--tag_set", "serve", "--signature_def", signature]
    if input_exprs:
        command += ["--input_exprs", input_exprs]
    if inputs:
        command += ["--inputs", inputs]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env=_environment(), cwd="/")
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


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
