"""Runs requests against a SavedModel the way TF Serving does, and the Python way, in one process.

Run as a script in a fresh interpreter that imports only TensorFlow and tf-text (what TF Serving
links). It reads jobs from standard input, one JSON line each:
`{"path": ..., "requests": [{"signature": ..., "inputs": {name: encoded}}]}`, and answers each
with one line, `ANSWER` and then JSON that holds, for each request, the outputs of:

- `session`: TF Serving's path. `tf.compat.v1.saved_model.loader.load` imports the MetaGraph
  into a session, runs the saver's restore op on `variables/` and the init op (tables, the
  SentencePiece model); then `Session.run` feeds and fetches the signature's tensors by name.
- `object_graph`: `tf.saved_model.load(path).signatures[...]`, the Python object-graph path.

Arrays travel as `array_json` encodes them. A request that fails gives
`{"error": type, "message": its text}`. A request with `"carry_state": true` also gets, as
inputs, the `state_*` outputs of the request before it on the same path (a streaming client).

Like a model server, the process loads export after export, each into its own graph and
session; the interpreter stays free of project code, which every job checks. A job that fails
as a whole answers `{"job_error": traceback}`.
"""

import json
import sys
import traceback

import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the tf-text ops, as TF Serving links them
from array_json import decode, encode  # a sibling file: numpy only


def failure(error):
    message = getattr(error, "message", None) or str(error)
    return {"error": type(error).__name__, "message": message.strip()[:3000]}


def request_inputs(request, previous):
    """The request's inputs as arrays, with the state carried from `previous` if it asks."""
    inputs = {name: decode(value) for name, value in request["inputs"].items()}
    if request.get("carry_state"):
        inputs.update({name: value for name, value in previous.items()
                       if name.startswith("state_") and name not in inputs})
    return inputs


def run_in_session(path, requests):
    """Every request through TF Serving's loader: one graph, one session, as a server holds."""
    results, previous = [], {}
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
        for request in requests:
            signature = meta_graph.signature_def[request["signature"]]
            feeds = {signature.inputs[name].name: value
                     for name, value in request_inputs(request, previous).items()}
            fetches = {name: info.name for name, info in signature.outputs.items()}
            try:
                previous = session.run(fetches, feeds)
                results.append({name: encode(value) for name, value in previous.items()})
            except tf.errors.OpError as error:
                previous = {}
                results.append(failure(error))
    return results


def run_object_graph(path, requests):
    loaded = tf.saved_model.load(path)
    results, previous = [], {}
    for request in requests:
        function = loaded.signatures[request["signature"]]
        inputs = {name: tf.constant(value)
                  for name, value in request_inputs(request, previous).items()}
        try:
            previous = {name: value.numpy() for name, value in function(**inputs).items()}
            results.append({name: encode(value) for name, value in previous.items()})
        except (tf.errors.OpError, ValueError, TypeError) as error:
            previous = {}
            results.append(failure(error))
    return results


def serve(job):
    session = run_in_session(job["path"], job["requests"])
    object_graph = run_object_graph(job["path"], job["requests"])
    imported = {module.split(".")[0] for module in sys.modules}
    assert not imported & {"tfformer", "applications", "tests"}, "the export needed project code"
    return [{"session": s, "object_graph": o} for s, o in zip(session, object_graph)]


def main():
    for line in sys.stdin:
        try:
            answer = serve(json.loads(line))
        except Exception:  # noqa: BLE001  the caller shows it; the next job still runs
            answer = {"job_error": traceback.format_exc()}
        print("ANSWER " + json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
