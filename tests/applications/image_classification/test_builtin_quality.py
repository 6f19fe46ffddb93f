"""The tiny preset learns the built-in shapes well above chance (slow: ~3 minutes)."""

import pytest

from applications.image_classification.builtin_data import CLASS_NAMES
from applications.image_classification.config import PRESETS, ImageClassificationConfig
from applications.image_classification.train import train


@pytest.mark.slow
def test_tiny_preset_beats_chance_by_far(tmp_path):
    result = train(ImageClassificationConfig(**PRESETS["tiny"]), workdir=str(tmp_path / "run"),
                   export_dir=str(tmp_path / "export"), verbose=0, examples=0)
    chance = 100.0 / len(CLASS_NAMES)
    assert result["scores"]["top1"] >= 2.5 * chance, result["scores"]
