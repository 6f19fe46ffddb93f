"""The main job's promise: the tiny preset learns the built-in task (slow: ~3 minutes)."""

import pytest

from applications.translation.config import PRESETS, TranslationConfig
from applications.translation.train import train


@pytest.mark.slow
def test_tiny_preset_translates_the_builtin_test_split(tmp_path):
    result = train(TranslationConfig(**PRESETS["tiny"]), workdir=str(tmp_path / "run"),
                   export_dir=str(tmp_path / "export"), verbose=0, examples=0)
    assert result["scores"]["exact"] >= 90.0, result["scores"]
    assert result["scores"]["chrf"] >= 95.0, result["scores"]
