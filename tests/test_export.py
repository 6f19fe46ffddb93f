import os
import threading

import keras
import numpy as np
import tensorflow as tf

from tests.support.serving_checks import read_warmup_requests, serve_in_session
from tfformer.export import export_saved_model, latest_version_dir, versions


class Doubler(tf.Module):
    def __init__(self):
        super().__init__()
        self.weights = tf.Variable(tf.random.normal([256, 256]))  # some bytes to write

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def serve(self, x):
        return {"y": 2.0 * x}


def test_versions_increment_and_no_temporary_is_left(tmp_path):
    base = str(tmp_path / "doubler")
    module = Doubler()
    first = export_saved_model(module, base, {"serving_default": module.serve})
    second = export_saved_model(module, base, {"serving_default": module.serve})
    assert (os.path.basename(first), os.path.basename(second)) == ("1", "2")
    assert versions(base) == [1, 2]
    assert sorted(os.listdir(base)) == ["1", "2"]
    assert latest_version_dir(base) == second
    served = tf.saved_model.load(second)
    assert served.signatures["serving_default"](x=tf.constant([1.5]))["y"].numpy()[0] == 3.0


def test_a_reader_never_sees_a_partial_version(tmp_path):
    base = str(tmp_path / "doubler")
    module = Doubler()
    seen_partial, done = [], threading.Event()

    def watch():
        while not done.is_set():
            for version in versions(base):
                path = os.path.join(base, str(version))
                if not os.path.exists(os.path.join(path, "saved_model.pb")) or not os.path.isdir(
                        os.path.join(path, "variables")):
                    seen_partial.append(path)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(3):
            export_saved_model(module, base, {"serving_default": module.serve})
    finally:
        done.set()
        watcher.join()
    assert versions(base) == [1, 2, 3]
    assert not seen_partial


class KerasServer(tf.Module):
    """A trained Keras model, a lookup table and an asset behind one signature, as the
    applications' servers hold them."""

    def __init__(self, directory):
        super().__init__()
        self.model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4),
                                       keras.layers.Dense(2)])
        self.model.compile(optimizer="adam", loss="mse")
        self.model.fit(np.ones((8, 3)), np.ones((8, 2)), verbose=0)  # Adam now has slots
        self.labels = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant([0, 1], tf.int64), ["no", "yes"]),
            default_value="?")
        vocabulary = os.path.join(directory, "vocabulary.txt")
        with open(vocabulary, "w") as handle:
            handle.write("no\nyes\n")
        self.vocabulary = tf.saved_model.Asset(vocabulary)

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def serve(self, x):
        scores = self.model(x)
        return {"scores": scores, "label": self.labels.lookup(tf.argmax(scores, axis=1))}


def test_a_keras_server_loads_through_tf_servings_session_path(tmp_path):
    """TF Serving's loader (restore op, init op, `Session.run`) answers like the object graph,
    and the export holds the model's variables, the table and the asset, not the optimizer."""
    server = KerasServer(str(tmp_path))
    x = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    path = export_saved_model(server, str(tmp_path / "served"), {"serving_default": server.serve},
                              warmup_requests=[("serving_default", {"x": x[:2]})])
    (answer,) = serve_in_session(path, [("serving_default", {"x": x})])
    expected = server.serve(tf.constant(x))
    np.testing.assert_allclose(answer["scores"], expected["scores"], atol=1e-6)
    assert answer["label"].tolist() == expected["label"].numpy().tolist()
    saved = [name for name, _ in tf.train.list_variables(os.path.join(path, "variables",
                                                                      "variables"))]
    assert sum(name.endswith("VARIABLE_VALUE") for name in saved) == 4  # two kernels, two biases
    assert not [name for name in saved if "optimizer" in name]
    assert os.listdir(os.path.join(path, "assets")) == ["vocabulary.txt"]
    (warmup,) = read_warmup_requests(path)
    assert warmup[0] == "serving_default"
    np.testing.assert_array_equal(warmup[1]["x"], x[:2])
