"""The tiny preset, the image main job, learns the built-in shapes: at least 95% top-1 on the
test split, the figure README gives (slow: about 5 minutes)."""

import pytest

from applications.image_classification.builtin_data import CLASS_NAMES
from applications.image_classification.config import PRESETS, ImageClassificationConfig
from applications.image_classification.train import train


@pytest.mark.slow
def test_tiny_preset_reaches_95_percent(tmp_path):
    result = train(ImageClassificationConfig(**PRESETS["tiny"]), workdir=str(tmp_path / "run"),
                   export_dir=str(tmp_path / "export"), verbose=0, examples=0)
    assert result["scores"]["top1"] >= 95.0, result["scores"]
    assert len(result["class_names"]) == len(CLASS_NAMES)
