import os
import threading

import tensorflow as tf

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
