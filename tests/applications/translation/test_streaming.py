"""The translation training stream: read lazily from the files, every good pair once per
pass in batches of exactly batch_size, bad lines and long pairs left out and logged, and a
resumed stream that continues exactly where the uninterrupted one was."""

import dataclasses

import numpy as np
import pytest

from applications.common import bad_examples
from applications.translation import corpus, data
from applications.translation.config import PRESETS, TranslationConfig
from applications.translation.vocabularies import SentencePieceVocabulary

CONFIG = TranslationConfig(**{**PRESETS["tiny"], "vocabulary_size": 80, "batch_size": 4,
                              "max_target_length": 8, "max_source_length": 12,
                              "max_bad_share": 0.2, "shuffle_buffer": 16})
WORDS = ["eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht"]


def _corpus(tmp_path):
    """37 numbered pairs on disk: line 5 not valid UTF-8, 3 with targets too long, the last
    held out for validation (2%, at least one): 32 good training pairs."""
    sources, targets = [], []
    for number in range(37):
        sources.append(f"n{number} " + "one " * (number % 3))
        long = number in (7, 20, 33)
        targets.append(f"z{number} " + " ".join(WORDS[: 12 if long else number % 4]))
    targets[4] = None
    (tmp_path / "train.en").write_text("".join(s + "\n" for s in sources), encoding="utf-8")
    (tmp_path / "train.de").write_bytes(b"".join(
        b"\xff\xfe broken\n" if t is None else (t + "\n").encode() for t in targets))
    return corpus.list_corpus(str(tmp_path), CONFIG)


def _vocabularies(splits):
    pairs = data.sample_pairs(splits["train"], 1000)
    source_proto, target_proto = data.train_tokenizers(pairs, CONFIG)
    return (SentencePieceVocabulary(source_proto, CONFIG.max_source_length),
            SentencePieceVocabulary(target_proto))


def _numbers(inputs, source):
    """The pair number of each row of a batch (its source's first piece, "n<number>")."""
    texts = source.detokenize(inputs["source_ids"]).numpy()
    return [int(text.split()[0][1:]) for text in texts]


def test_the_stream_gives_every_good_pair_once_a_pass_and_logs_what_it_leaves_out(
        tmp_path, capfd):
    splits = _corpus(tmp_path)
    assert (splits["train"].count, splits["val"].count) == (36, 1)
    source, target = _vocabularies(splits)
    log = tmp_path / "log.tsv"
    stream = data.training_batches(splits["train"], source, target, CONFIG,
                                   log_path=str(log))
    good = 32  # a pass; a pool of 16 batches of 4 is 64 pairs: two passes
    numbers = []
    for inputs, labels in stream.take(16 * 3):
        assert inputs["source_ids"].shape[0] == labels.shape[0] == 4
        numbers += _numbers(inputs, source)
    expected = sorted(set(range(37)) - {36} - {4, 7, 20, 33})
    assert sorted(numbers) == sorted(expected * 6)
    assert numbers[:good] != sorted(numbers[:good])  # shuffled
    assert "train.{en,de}, line 5: the target is not valid UTF-8" in capfd.readouterr().err
    logged = {int(line.split("\t")[0]): line.split("\t")[2] for line in
              log.read_text().splitlines()}
    assert logged.keys() == bad_examples.bad_ids(str(log)) and len(logged) == 4
    assert sum("more than max_target_length" in reason for reason in logged.values()) == 3


@pytest.mark.parametrize("epochs_done", [1, 3, 4])
def test_a_resumed_stream_continues_exactly_where_the_whole_one_was(tmp_path, epochs_done):
    """An epoch of 10 steps (40 pairs) ends mid-pass (32) and mid-pool (64); the resumed
    stream starts at the pool it was in and gives the whole stream's next batches, bit for
    bit."""
    splits = _corpus(tmp_path)
    source, target = _vocabularies(splits)
    log = str(tmp_path / "log.tsv")
    whole = list(data.training_batches(splits["train"], source, target, CONFIG,
                                       log_path=log).take(60).as_numpy_iterator())
    consumed = epochs_done * 10 * CONFIG.batch_size
    start = data.training_start(splits["train"], CONFIG, consumed, log_path=log)
    resumed = data.training_batches(splits["train"], source, target, CONFIG, start,
                                    log_path=log)
    for (inputs, labels), (whole_inputs, whole_labels) in zip(
            resumed.take(8).as_numpy_iterator(), whole[consumed // 4:]):
        np.testing.assert_array_equal(inputs["source_ids"], whole_inputs["source_ids"])
        np.testing.assert_array_equal(labels, whole_labels)


def test_the_tokenizer_sample_is_bounded_and_spread_across_the_file(tmp_path):
    (tmp_path / "train.tsv").write_text(
        "".join(f"early {i}\tfrüh {i}\n" for i in range(500))
        + "".join(f"late {i}\tspät {i}\n" for i in range(500)), encoding="utf-8")
    splits = corpus.list_corpus(str(tmp_path), CONFIG)
    sample = data.sample_pairs(splits["train"], 100)
    assert 90 <= len(sample) <= 100
    assert sum(s.startswith("late") for s, _ in sample) == pytest.approx(len(sample) / 2, abs=2)
    assert isinstance(splits["train"], corpus.TextSplit)


def test_a_prepared_directory_round_trips_and_its_languages_are_checked(tmp_path):
    from applications.translation import prepare

    (tmp_path / "text").mkdir()
    splits = _corpus(tmp_path / "text")
    summary = prepare.prepare(str(tmp_path / "text"), str(tmp_path / "prepared"), CONFIG,
                              num_shards=3)
    assert "train 35 pairs in 3 shards" in summary  # the bad line left out
    prepared = corpus.list_corpus(str(tmp_path / "prepared"), CONFIG)
    assert prepared["train"].count == 35 and len(prepared["train"].files) == 3
    text = sorted(data.read_pairs(splits["train"], CONFIG))
    assert sorted(data.read_pairs(prepared["train"], CONFIG)) == text
    assert data.read_pairs(prepared["train"], CONFIG) != text  # shuffled when written
    # An interrupted prepare: the same command writes what is missing, the same bytes.
    written = {path.name: path.read_bytes() for path in (tmp_path / "prepared").iterdir()}
    (tmp_path / "prepared" / "train-00001-of-00003.tfrecord").unlink()
    (tmp_path / "prepared" / "train-00002-of-00003.tfrecord").rename(
        tmp_path / "prepared" / "train-00002-of-00003.tfrecord.scatter")
    prepare.prepare(str(tmp_path / "text"), str(tmp_path / "prepared"), CONFIG, num_shards=3)
    assert {path.name: path.read_bytes() for path in (tmp_path / "prepared").iterdir()} == written
    with pytest.raises(Exception, match="holds en to de pairs"):
        corpus.list_corpus(str(tmp_path / "prepared"),
                           dataclasses.replace(CONFIG, target_language="fr"))
