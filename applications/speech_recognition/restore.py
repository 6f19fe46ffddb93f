"""A trained recognizer back from its run directory, for Python use and re-export.

>>> recognizer = load("runs/speech_recognition")  # doctest: +SKIP
>>> recognizer.transcribe([open("clip.wav", "rb").read()])  # doctest: +SKIP
['4 2 #']
"""

import numpy as np
import tensorflow as tf

from applications.common.quantization import quantize_for_export
from applications.common.restore import read_run, restore_weights
from applications.speech_recognition import serving
from applications.speech_recognition.config import SpeechRecognitionConfig
from applications.speech_recognition.model import build_recognizer


class TrainedRecognizer:
    """A run's model with its output symbols and config; `server` is what an export serves."""

    def __init__(self, config, model, server, vocabulary, weights):
        self.config, self.model, self.server = config, model, server
        self.vocabulary, self.weights = vocabulary, weights

    def transcribe(self, clips, sample_rate=None):
        """WAV files' bytes, or float waveforms in [-1, 1] at `sample_rate` (default the
        model's) -> transcripts, as the export answers."""
        if len(clips) and isinstance(clips[0], bytes):
            outputs = self.server.serve(tf.constant(list(clips)))["transcript"].numpy()
        else:  # one request a clip: waveforms of different lengths
            rate = tf.constant(sample_rate or self.config.sample_rate, tf.int32)
            outputs = [self.server.serve_waveform(tf.constant(np.asarray(clip, np.float32)[None]),
                                                  rate)["transcript"].numpy()[0]
                       for clip in clips]
        return [text.decode("utf-8") for text in outputs]

    def export(self, base_dir):
        return serving.export(self.server, base_dir)


def load(workdir="runs/speech_recognition", weights=None, quantize=None):
    """The recognizer trained in `workdir`, finished or interrupted; `weights` "best" or
    "last" (default the run's `export_weights`); `quantize` "none", "int8" or "int4" (default
    the run's `quantize`; see `applications.common.quantization`)."""
    config, info = read_run(workdir, SpeechRecognitionConfig, needs=["vocabulary"])
    model = build_recognizer(config, len(info["vocabulary"]))
    chosen = restore_weights(model, workdir, weights or config.export_weights)
    quantize_for_export(model, quantize or config.quantize)
    server = serving.SpeechServer(model, info["vocabulary"], config, lexicon=info.get("lexicon"))
    return TrainedRecognizer(config, model, server, info["vocabulary"],
                             chosen)
