"""A trained translator back from its run directory, for Python use and re-export.

>>> translator = load("runs/translation")  # doctest: +SKIP
>>> translator.translate(["twenty-one"])  # doctest: +SKIP
['einundzwanzig']
"""

import tensorflow as tf

from applications.common.quantization import quantize_for_export
from applications.common.restore import read_run, restore_weights
from applications.translation import serving, vocabularies
from applications.translation.config import TranslationConfig
from applications.translation.model import build_translator


class TrainedTranslator:
    """A run's model with its tokenizers and config; `server` is what an export serves."""

    def __init__(self, config, model, server, weights):
        self.config, self.model, self.server, self.weights = config, model, server, weights

    def translate(self, sentences, greedy=False):
        """list of str -> list of str, decoded as the export decodes (beam or greedy)."""
        serve = self.server.serve_greedy if greedy else self.server.serve
        outputs = serve(tf.constant(list(sentences), tf.string))["translation"].numpy()
        return [text.decode("utf-8") for text in outputs]

    def export(self, base_dir):
        """Writes the next version under `base_dir`; returns its path."""
        return serving.export(self.server, base_dir)


def load(workdir="runs/translation", weights=None, quantize=None):
    """The translator trained in `workdir`, finished or interrupted.

    `weights`: "best" or "last" (see `applications.common.restore.weights_path`); default the
    run's `export_weights`. `quantize`: "none", "int8" or "int4" (see
    `applications.common.quantization`); default the run's `quantize`.
    """
    config, _ = read_run(workdir, TranslationConfig)
    source, target = vocabularies.load_vocabularies(workdir, config)
    model = build_translator(config, source.size, target.size, target.pad_id)
    chosen = restore_weights(model, workdir, weights or config.export_weights)
    quantize_for_export(model, quantize or config.quantize)
    server = serving.TranslationServer(model, config, workdir)
    return TrainedTranslator(config, model, server, chosen)
