"""Draws the README's pictures from the bundled demo models (the tiny presets on built-in data).

    .venv/bin/python docs/make_pictures.py        # ~8 minutes on a 2-core CPU

Trains the three tiny applications into runs/pictures/, then writes docs/images/*.png with
the same functions the `tfformer plot` commands use.
"""

import os

import numpy as np
import tensorflow as tf

from applications.common.config import from_preset
from applications.image_classification import builtin_data as image_data
from applications.image_classification.config import PRESETS as IMAGE_PRESETS
from applications.image_classification.config import ImageClassificationConfig
from applications.image_classification.train import train as train_images
from applications.speech_recognition import builtin_data as speech_data
from applications.speech_recognition.config import PRESETS as SPEECH_PRESETS
from applications.speech_recognition.config import SpeechRecognitionConfig
from applications.speech_recognition.features import FrontEnd
from applications.speech_recognition.train import train as train_speech
from applications.translation.attention_plot import plot_cross_attention
from applications.translation.config import PRESETS as TRANSLATION_PRESETS
from applications.translation.config import TranslationConfig
from applications.translation.train import train as train_translation
from tfformer import plots

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = os.path.join(HERE, "images")
RUNS = os.path.join(HERE, "..", "runs", "pictures")


def _run(name):
    return {"workdir": os.path.join(RUNS, name), "export_dir": os.path.join(RUNS, name, "export"),
            "verbose": 2, "examples": 0}


def main():
    os.makedirs(IMAGES, exist_ok=True)
    plots.plot_positions("sinusoidal", 64, 128, os.path.join(IMAGES, "positions.png"))

    translation = train_translation(
        from_preset(TranslationConfig, TRANSLATION_PRESETS, "tiny"), **_run("translation"))
    plots.plot_training_curves(os.path.join(RUNS, "translation", "logs"),
                               os.path.join(IMAGES, "training_curves.png"))
    outputs = translation["server"].serve_attention(tf.constant(["twenty-one red apples"]))
    plot_cross_attention(outputs, os.path.join(IMAGES, "cross_attention.png"))

    images = train_images(
        from_preset(ImageClassificationConfig, IMAGE_PRESETS, "tiny"), **_run("image"))
    picture = image_data.render("star", 32, np.random.default_rng(123))
    png = tf.io.encode_png(picture).numpy()
    rollout = images["server"].serve_attention(tf.constant([png]))["rollout"].numpy()[0]
    plots.plot_rollout(picture, rollout, os.path.join(IMAGES, "vit_rollout.png"))

    speech_config = from_preset(SpeechRecognitionConfig, SPEECH_PRESETS, "tiny")
    speech = train_speech(speech_config, **_run("speech"))
    waves, _ = speech_data.generate_split(1, speech_config.sample_rate, seed=7)
    features, frames = FrontEnd(speech_config)(waves[0][None], [len(waves[0])])
    plots.plot_self_attention(speech["model"], {"features": features, "feature_lengths": frames},
                              os.path.join(IMAGES, "speech_self_attention.png"), layer=0)


if __name__ == "__main__":
    main()
