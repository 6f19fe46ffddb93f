import pytest

from applications.common.config import to_json
from applications.translation import train as train_module
from applications.translation.config import PRESETS, TranslationConfig

CONFIG = TranslationConfig(**{**PRESETS["tiny"], "vocabulary_size": 40})
PAIRS = [("one dog", "ein Hund"), ("two cats", "zwei Katzen"), ("three birds", "drei Vögel")] * 5


def test_a_resumed_run_reuses_its_tokenizer(tmp_path, monkeypatch):
    workdir = str(tmp_path)
    assert not train_module._same_tokenizer_config(workdir, CONFIG)  # no run yet
    (tmp_path / "config.json").write_text(to_json(CONFIG))
    train_module._tokenizers(workdir, CONFIG, PAIRS, same_tokenizer_config=False)
    first = (tmp_path / "tokenizer" / "spm.model").read_bytes()

    def refuse(*args):
        raise AssertionError("the tokenizer was trained again")

    monkeypatch.setattr(train_module.data, "train_tokenizers", refuse)
    longer = TranslationConfig(**{**PRESETS["tiny"], "vocabulary_size": 40, "epochs": 99})
    assert train_module._same_tokenizer_config(workdir, longer)  # more epochs: same tokenizer
    train_module._tokenizers(workdir, longer, PAIRS, same_tokenizer_config=True)
    assert (tmp_path / "tokenizer" / "spm.model").read_bytes() == first
    changed = TranslationConfig(**{**PRESETS["tiny"], "vocabulary_size": 41})
    assert not train_module._same_tokenizer_config(workdir, changed)
    with pytest.raises(AssertionError, match="trained again"):
        train_module._tokenizers(workdir, changed, PAIRS, same_tokenizer_config=False)
