"""The tiny preset transcribes the built-in DTMF clips with a low error rate (slow: ~1.5 minutes)."""

import pytest

from applications.speech_recognition.config import PRESETS, SpeechRecognitionConfig
from applications.speech_recognition.train import train


@pytest.mark.slow
def test_tiny_preset_transcribes_builtin_clips(tmp_path):
    result = train(SpeechRecognitionConfig(**PRESETS["tiny"]), workdir=str(tmp_path / "run"),
                   export_dir=str(tmp_path / "export"), verbose=0, examples=0)
    assert result["scores"]["wer"] < 10.0, result["scores"]
    assert result["scores"]["exact"] > 75.0, result["scores"]
