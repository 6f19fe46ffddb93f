"""Arrays as JSON, for requests and answers that cross into a fresh serving process.

`{"dtype", "shape", "data"}`; strings are base64-encoded bytes. Imports only numpy, so the
fresh process (TensorFlow and tf-text only, as TF Serving) may import it too.
"""

import base64

import numpy as np


def encode(value):
    """An array, or a list of bytes or str, as JSON-able data."""
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, bytes)) for v in value):
        items = [v.encode("utf-8") if isinstance(v, str) else v for v in value]
        value = np.empty(len(items), dtype=object)
        value[:] = items
    value = np.asarray(value)
    if value.dtype == object or value.dtype.kind in "SU":
        data = [base64.b64encode(bytes(item)).decode("ascii") for item in value.ravel()]
        return {"dtype": "string", "shape": list(value.shape), "data": data}
    return {"dtype": str(value.dtype), "shape": list(value.shape), "data": value.ravel().tolist()}


def decode(encoded):
    """The inverse of `encode`: strings come back as an object array of bytes."""
    if encoded["dtype"] == "string":
        data = [base64.b64decode(item) for item in encoded["data"]]
        return np.array(data, dtype=object).reshape(encoded["shape"])
    return np.array(encoded["data"], dtype=encoded["dtype"]).reshape(encoded["shape"])
