"""MirroredStrategy over two logical CPUs follows the same loss trajectory as one device
for the same global batch, for every application (randomness off: no dropout, no
augmentation, so both runs compute the same function on the same batches; and no
gradient clipping, which Keras applies to each replica's gradient before the all-reduce)."""

import dataclasses

import numpy as np
import pytest

from tests.layers.harness import two_cpu_strategy
from tests.support.serving_checks import read_warmup_requests, serve_in_session


def _translation():
    from applications.translation.config import PRESETS, TranslationConfig
    from applications.translation.train import train
    return train, dataclasses.replace(
        TranslationConfig(**PRESETS["tiny"]), builtin_examples=600, vocabulary_size=80,
        num_layers=1, d_model=32, num_heads=2, intermediate_dim=64, epochs=3, steps_per_epoch=3,
        batch_size=16, max_target_length=16, max_source_length=12, beam_size=1, dropout=0.0)


def _image_classification():
    from applications.image_classification.config import PRESETS, ImageClassificationConfig
    from applications.image_classification.train import train
    return train, dataclasses.replace(
        ImageClassificationConfig(**PRESETS["tiny"]), builtin_examples=300, num_layers=1,
        d_model=32, num_heads=2, intermediate_dim=64, epochs=3, steps_per_epoch=3,
        batch_size=16, augment=False, dropout=0.0)


def _speech_recognition():
    from applications.speech_recognition.config import PRESETS, SpeechRecognitionConfig
    from applications.speech_recognition.train import train
    return train, dataclasses.replace(
        SpeechRecognitionConfig(**PRESETS["tiny"]), builtin_examples=200, num_layers=1,
        d_model=32, num_heads=2, intermediate_dim=64, epochs=3, steps_per_epoch=3,
        batch_size=16, spec_augment=False, dropout=0.0,
        gradient_clip_norm=None)


# Speech's run is the slowest (36 s); its mirrored training stays in the default run
# through test_training.py.
@pytest.mark.parametrize("application", [
    pytest.param(_translation, id="translation"),
    pytest.param(_image_classification, id="image_classification"),
    pytest.param(_speech_recognition, id="speech_recognition", marks=pytest.mark.slow)])
def test_two_replicas_follow_the_one_device_trajectory(application, tmp_path):
    train, config = application()
    runs = {}
    for name, strategy in (("one_device", "one_device"), ("mirrored", two_cpu_strategy())):
        runs[name] = train(config, workdir=str(tmp_path / name), verbose=0, examples=0,
                           export_dir=str(tmp_path / name / "export"), strategy=strategy)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(runs["mirrored"]["history"][key],
                                   runs["one_device"]["history"][key], rtol=2e-4, err_msg=key)
    assert runs["one_device"]["history"]["loss"][0] != runs["one_device"]["history"]["loss"][-1]
    for a, b in zip(runs["mirrored"]["model"].get_weights(),
                    runs["one_device"]["model"].get_weights()):
        np.testing.assert_allclose(a, b, atol=2e-4)
    # Trained with mirrored variables, the export still loads through TF Serving's session path.
    export = runs["mirrored"]["export_path"]
    answers = serve_in_session(export, read_warmup_requests(export))
    assert all("error" not in answer for answer in answers)
