import dataclasses
import gzip
import json
import pathlib

import numpy as np
import pytest

from applications.common.text_files import DataError
from applications.translation import corpus, data
from applications.translation.config import PRESETS, TranslationConfig
from applications.translation.vocabularies import MarianVocabulary, SentencePieceVocabulary

MARIAN = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "pretrained" / "marian_shared"

CONFIG = TranslationConfig(**{**PRESETS["tiny"], "vocabulary_size": 60, "batch_size": 4,
                              "max_target_length": 12, "max_source_length": 6})


def _write(path, lines, gz=False):
    text = "".join(line + "\n" for line in lines).encode()
    path.write_bytes(gzip.compress(text) if gz else text)


def test_reads_gzipped_parallel_files_in_the_multi30k_layout(tmp_path):
    _write(tmp_path / "train.en.gz", ["a dog", "two cats"], gz=True)
    _write(tmp_path / "train.de.gz", ["ein Hund", "zwei Katzen"], gz=True)
    _write(tmp_path / "val.en", ["a cat"])
    _write(tmp_path / "val.de", ["eine Katze"])
    corpus = data.load_corpus(str(tmp_path), CONFIG)
    assert corpus["train"] == [("a dog", "ein Hund"), ("two cats", "zwei Katzen")]
    assert corpus["val"] == [("a cat", "eine Katze")] and corpus["test"] == []


def test_reads_tsv_skipping_blank_lines_and_naming_a_bad_one(tmp_path, capfd):
    _write(tmp_path / "train.tsv", ["a dog\tein Hund", "", "no tab here"]
           + ["two cats\tzwei Katzen"] * 58)
    config = dataclasses.replace(CONFIG, max_bad_share=0.05)
    corpus = data.load_corpus(str(tmp_path), config)
    assert len(corpus["val"]) + len(corpus["train"]) == 59  # the bad line left out
    assert len(corpus["val"]) == 1  # 2% of the 60 listed held out, evenly spread
    assert ("a dog", "ein Hund") in corpus["train"]
    assert (f"{tmp_path / 'train.tsv'}, line 3: expected 'source<TAB>target', found 1 "
            "tab-separated fields") in capfd.readouterr().err
    with pytest.raises(DataError, match=r"too many bad examples in the train pairs: 1 of .*"
                       r"train.tsv, line 3: expected 'source<TAB>target'.*max_bad_share"):
        data.load_corpus(str(tmp_path), CONFIG)


def test_misaligned_and_undecodable_files_are_named(tmp_path, capfd):
    _write(tmp_path / "train.en", ["a", "b"])
    _write(tmp_path / "train.de", ["a"])
    with pytest.raises(DataError, match="train.en has 2 lines but .*train.de has 1"):
        data.load_corpus(str(tmp_path), CONFIG)
    _write(tmp_path / "train.en", ["a", "b", "c"] * 20)
    (tmp_path / "train.de").write_bytes(b"ok\n\xff\xfe broken\n" + b"fine\n" * 58)
    corpus = data.load_corpus(str(tmp_path), dataclasses.replace(CONFIG, max_bad_share=0.05))
    assert len(corpus["train"]) + len(corpus["val"]) == 59
    assert "train.{en,de}, line 2: the target is not valid UTF-8" in capfd.readouterr().err
    (tmp_path / "train.en.gz").write_bytes(gzip.compress(b"a\nb\n" * 1000)[:-40])
    (tmp_path / "train.en").unlink()
    with pytest.raises(DataError, match=r"cannot read .*train.en.gz: it ends early"):
        data.load_corpus(str(tmp_path), CONFIG)
    with pytest.raises(DataError, match="does not exist"):
        data.load_corpus(str(tmp_path / "missing_dir"), CONFIG)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no training data in .*empty"):
        data.load_corpus(str(tmp_path / "empty"), CONFIG)


def _vocabularies(pairs, config):
    source_proto, target_proto = data.train_tokenizers(pairs, config)
    return (SentencePieceVocabulary(source_proto, config.max_source_length),
            SentencePieceVocabulary(target_proto))


def test_batches_shift_targets_and_leave_out_long_pairs():
    pairs = [("one dog", "ein Hund"), ("two cats", "zwei Katzen"),
             ("many", "sehr " * 30), ("three birds", "drei Vögel")] * 3
    source, target = _vocabularies(pairs, CONFIG)
    assert data.long_share(pairs, target, CONFIG) == 0.25  # what training reports
    seen = 0
    val_data = data.batches(corpus.from_pairs("val", pairs), source, target, CONFIG)
    assert not val_data.options().autotune.enabled  # example_stream.for_evaluation
    for inputs, labels in val_data:
        target_in, labels = inputs["target_ids"].numpy(), labels.numpy()
        assert (target_in[:, 0] == data.BOS_ID).all()
        for row_in, row_out in zip(target_in, labels):
            n = int((row_out != 0).sum())
            assert row_out[n - 1] == data.EOS_ID
            np.testing.assert_array_equal(row_in[1:n], row_out[:n - 1])
        sources = inputs["source_ids"].numpy()
        assert sources.shape[1] >= 1 and ((sources != 0).sum(1) <= CONFIG.max_source_length).all()
        seen += len(labels)
    assert seen == 9


def test_long_sources_are_truncated_with_eos():
    import tensorflow as tf

    tokens = tf.ragged.constant([[5, 6, 7, 8, 9, 10, 11], [5]])
    ids = data.encode_source(tokens, max_length=4).to_list()
    assert ids == [[5, 6, 7, data.EOS_ID], [5, data.EOS_ID]]


def test_marian_training_data_has_marian_tokenizers_labels():
    """Fine-tuning an imported Marian run: labels are `MarianTokenizer(text_target=...)`'s
    ids, the decoder reads its pad id first (Marian's start), and padding is the pad id."""
    reference = json.loads((MARIAN / "reference.json").read_text(encoding="utf-8"))
    vocabulary = json.loads((MARIAN / "vocab.json").read_text(encoding="utf-8"))
    pad = vocabulary["<pad>"]
    source = MarianVocabulary((MARIAN / "source.spm").read_bytes(), vocabulary, 64)
    target = MarianVocabulary((MARIAN / "target.spm").read_bytes(), vocabulary)
    pairs = list(zip(reference["sentences"], reference["targets"]))
    config = TranslationConfig(**{**PRESETS["tiny"], "batch_size": 8, "max_source_length": 64,
                                  "max_target_length": 30, "tokenizer": "marian"})
    labels_seen = {}
    for inputs, labels in data.batches(corpus.from_pairs("val", pairs), source, target, config):
        target_in, labels = inputs["target_ids"].numpy(), labels.numpy()
        assert (target_in[:, 0] == pad).all()
        for row_in, row_out, row_source in zip(target_in, labels, inputs["source_ids"].numpy()):
            n = int((row_out != pad).sum())
            np.testing.assert_array_equal(row_in[1:n], row_out[:n - 1])
            labels_seen[tuple(row_source[row_source != pad])] = row_out[:n].tolist()
    for source_ids, target_ids in zip(reference["token_ids"], reference["target_ids"]):
        assert labels_seen[tuple(source_ids)] == target_ids


def test_the_tokenizer_learns_from_a_bounded_sample_spread_across_the_corpus(monkeypatch):
    """SentencePiece's time grows with its input: at most `tokenizer_sample` sentences a
    model, taken from the whole corpus, not its head; a smaller corpus is used whole."""
    from applications.common.sampling import evenly_spread

    assert evenly_spread(list(range(3)), 4) == [0, 1, 2]
    pairs = [(f"early {i}", f"früh {i}") for i in range(100)] + [
        (f"late {i}", f"spät {i}") for i in range(100)]
    seen = []
    monkeypatch.setattr(data, "train_sentencepiece",
                        lambda sentences, *args: seen.append(list(sentences)) or b"model")
    config = dataclasses.replace(TranslationConfig(), tokenizer_sample=100)
    data.train_tokenizers(pairs, config)
    (shared,) = seen
    assert len(shared) == 100  # 50 English and 50 German sentences
    assert shared[0] == "early 0" and shared[49] == "late 99" and shared[50] == "früh 0"
    assert sum(sentence.startswith("late") for sentence in shared) == 25
    seen.clear()
    data.train_tokenizers(pairs, dataclasses.replace(config, shared_vocabulary=False))
    sources, targets = seen
    assert len(sources) == len(targets) == 100  # one model a language, 100 sentences each
    assert sources[0] == "early 0" and sources[-1] == "late 99" and targets[0] == "früh 0"
    seen.clear()
    data.train_tokenizers(pairs[:30], config)  # fewer than the sample: all of them
    assert len(seen[0]) == 60
