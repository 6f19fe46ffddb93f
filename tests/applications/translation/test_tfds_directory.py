"""A TFDS translation dataset already on disk is read like the other layouts."""

import pytest

from applications.translation import data
from applications.translation.config import PRESETS, TranslationConfig

tfds = pytest.importorskip("tensorflow_datasets")

PAIRS = {"train": [("a dog", "ein Hund"), ("two cats", "zwei Katzen")],
         "validation": [("a cat", "eine Katze")]}


class TinyTranslation(tfds.core.GeneratorBasedBuilder):
    """A two-language dataset shaped like TFDS' translation sets (features by language)."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        features = tfds.features.FeaturesDict({"en": tfds.features.Text(),
                                               "de": tfds.features.Text()})
        return self.dataset_info_from_configs(features=features)

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(pairs) for split, pairs in PAIRS.items()}

    def _generate_examples(self, pairs):
        for index, (english, german) in enumerate(pairs):
            yield index, {"en": english, "de": german}


def test_reads_a_prepared_tfds_directory(tmp_path):
    TinyTranslation(data_dir=str(tmp_path)).download_and_prepare()
    corpus = data.load_corpus(str(tmp_path), TranslationConfig(**PRESETS["tiny"]))
    assert sorted(corpus["train"]) == sorted(PAIRS["train"])
    assert corpus["val"] == PAIRS["validation"] and corpus["test"] == []
