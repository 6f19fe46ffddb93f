"""The in-graph Marian tokenizer gives `transformers.MarianTokenizer`'s ids and decoded
strings (recorded by `tests/fixtures/pretrained/make_marian.py`), eagerly and traced."""

import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from tfformer.pretrained.marian_tokenizer import MarianTokenizer

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "pretrained"
MARIANS = ["marian_shared", "marian_separate"]


def _reference(name):
    return json.loads((FIXTURES / name / "reference.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", MARIANS)
def test_ids_equal_marian_tokenizers(name):
    tokenizer = MarianTokenizer.from_directory(str(FIXTURES / name))
    reference = _reference(name)
    sentences = tf.constant(reference["sentences"])
    assert tokenizer.tokenize(sentences).to_list() == reference["token_ids"]
    traced = tf.function(tokenizer.tokenize, input_signature=[tf.TensorSpec([None], tf.string)])
    assert traced(sentences).to_list() == reference["token_ids"]


@pytest.mark.parametrize("name", MARIANS)
def test_target_ids_equal_marian_tokenizers_text_target(name):
    tokenizer = MarianTokenizer.from_directory(str(FIXTURES / name), side="target")
    reference = _reference(name)
    assert tokenizer.tokenize(tf.constant(reference["targets"])).to_list() == reference[
        "target_ids"]


@pytest.mark.parametrize("name", MARIANS)
def test_decoding_equals_batch_decode(name):
    tokenizer = MarianTokenizer.from_directory(str(FIXTURES / name))
    reference = _reference(name)
    with np.load(FIXTURES / name / "reference.npz") as arrays:
        for kind in ("greedy", "beam"):
            decoded = tokenizer.detokenize(arrays[f"{kind}_ids"]).numpy()
            assert [text.decode("utf-8") for text in decoded] == reference[kind], kind


def test_a_language_code_is_one_token_and_bad_files_are_named(tmp_path):
    directory = FIXTURES / "marian_shared"
    vocabulary = json.loads((directory / "vocab.json").read_text(encoding="utf-8"))
    vocabulary[">>fr<<"] = max(vocabulary.values()) + 1
    tokenizer = MarianTokenizer((directory / "source.spm").read_bytes(), vocabulary)
    plain = tokenizer.tokenize(tf.constant(["Two dogs play."])).to_list()[0]
    coded = tokenizer.tokenize(tf.constant([">>fr<<Two dogs play."])).to_list()[0]
    assert coded == [vocabulary[">>fr<<"], *plain]
    with pytest.raises(ValueError, match=r"vocab.json can't be read: No such file"):
        MarianTokenizer.from_directory(str(tmp_path))
    (tmp_path / "vocab.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"vocab.json is not JSON"):
        MarianTokenizer.from_directory(str(tmp_path))
    with pytest.raises(ValueError, match="the vocabulary has no <pad>"):
        MarianTokenizer(b"", {"</s>": 0, "<unk>": 1})
