"""Calling an export's signatures from the command line: load, check, serve files."""

import sys


class WrongExportError(ValueError):
    """An export whose `serving_default` does not take the input a command sends."""

    def __init__(self, path, inputs):
        self.path, self.inputs = path, sorted(inputs)
        super().__init__(f"{path} is not a tfformer export of this kind "
                         f"(its serving_default takes {self.inputs})")


def load_export(model, input_name):
    """The latest version of the export under `model`, after checking that its
    `serving_default` takes `input_name` (else `WrongExportError`)."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the ops a translation export uses)

    from tfformer.export import latest_version_dir

    path = latest_version_dir(model)
    served = tf.saved_model.load(path)
    inputs = set(served.signatures["serving_default"].structured_input_signature[1])
    if input_name not in inputs:
        raise WrongExportError(path, inputs)
    return served


def op_error_line(message):
    """The line of a TensorFlow op error that says what went wrong (the one before the
    `[[{{node ...}}]]` marker), without the graph-execution preamble."""
    lines = [line for line in message.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if line.strip().startswith("[[") and index > 0:
            line = lines[index - 1].strip()
            if line.startswith("assertion failed: [") and line.endswith("]"):  # tf.Assert's
                line = " ".join(line[len("assertion failed: ["):-1].split("] ["))
            return line
    return lines[-1].strip() if lines else message


def serve_files(model, paths, input_name, describe):
    """Calls the export's serving_default on each file's bytes, one request per file, and
    prints `path: describe(outputs)`. A file that can't be read or that the export rejects
    prints its error and the next file is served; the exit status is 1 if any failed."""
    import tensorflow as tf

    failed = 0
    readable = []
    for path in paths:  # before the export loads (seconds): a mistyped name is named at once
        problem = unreadable(path)
        if problem:
            print(f"{path}: error: {problem}", file=sys.stderr)
            failed += 1
        else:
            readable.append(path)
    signature = (load_export(model, input_name).signatures["serving_default"] if readable
                 else None)
    for path in readable:
        try:
            with open(path, "rb") as handle:
                contents = handle.read()
            outputs = signature(**{input_name: tf.constant([contents])})
        except OSError as error:
            print(f"{path}: error: {error.strerror or error}", file=sys.stderr)
        except tf.errors.InvalidArgumentError as error:
            print(f"{path}: error: {op_error_line(error.message)}", file=sys.stderr)
        else:
            print(f"{path}: {describe(outputs)}")
            continue
        failed += 1
    if failed:
        print(f"{failed} of {len(paths)} files failed", file=sys.stderr)
    return 1 if failed else 0


def unreadable(path):
    """Why the file `path` can't be read (as `open` would say it), or None."""
    try:
        with open(path, "rb"):
            return None
    except OSError as error:
        return error.strerror or str(error)
