"""The speech training stream: clips read from disk as they are used, every good clip (and
its perturbed copies) once a pass in batches of exactly batch_size, broken WAVs and long
clips left out and logged, and a resumed stream that continues where the whole one was."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from applications.common import bad_examples
from applications.speech_recognition import clips, data
from applications.speech_recognition.config import PRESETS, SpeechRecognitionConfig

CONFIG = dataclasses.replace(SpeechRecognitionConfig(**PRESETS["tiny"]), batch_size=4,
                             max_seconds=0.5, max_bad_share=0.3,
                             speed_perturbation=(0.9, 1.1))


def _manifest(tmp_path):
    """12 clips, each transcribed by its number: clip 3 is not a WAV, clip 8 is 0.8 s long
    (too long; at 0.9 and 1.1 too), the others 0.1-0.3 s; clip 11 holds a FLAC header."""
    rows = []
    for number in range(12):
        path = tmp_path / f"{number}.wav"
        seconds = 0.8 if number == 8 else 0.1 + 0.1 * (number % 3)
        tone = 0.3 * np.sin(np.arange(int(seconds * 8000)) * (0.05 + 0.01 * number))
        path.write_bytes(tf.audio.encode_wav(tone[:, None].astype(np.float32), 8000).numpy())
        rows.append(f"{number}.wav\t{number}\n")
    (tmp_path / "3.wav").write_bytes(b"ID3 an mp3, not a wav")
    (tmp_path / "11.wav").write_bytes(b"fLaC" + bytes(40))
    (tmp_path / "train.tsv").write_text("path\ttranscript\n" + "".join(rows))
    (tmp_path / "val.tsv").write_text("path\ttranscript\n" + rows[0])
    return clips.list_clips(str(tmp_path), CONFIG)


def _numbers(labels, lengths, vocabulary):
    return [int("".join(vocabulary[i] for i in row[:n])) for row, n in zip(labels, lengths)]


def test_every_good_clip_and_its_copies_once_a_pass_and_what_is_left_out_is_logged(
        tmp_path, capfd):
    splits = _manifest(tmp_path)
    vocabulary = data.build_vocabulary(splits["train"].all_transcripts())
    log = tmp_path / "log.tsv"
    stream = data.training_batches(splits["train"], vocabulary, CONFIG,
                                   log_path=str(log))
    # 12 clips x 3 speeds = 36 records a pass; 9 of them left out: 27 good. A pool of 16
    # batches of 4 is 64 clips: 27 pools are 64 passes.
    numbers = []
    for _, labels in stream.take(16 * 27).as_numpy_iterator():
        assert len(labels["labels"]) == 4
        numbers += _numbers(labels["labels"], labels["label_lengths"], vocabulary)
    good = [n for n in range(12) if n not in (3, 8, 11)]
    assert sorted(numbers) == sorted(good * 3 * 64)
    err = capfd.readouterr().err
    assert f"{tmp_path / '3.wav'} at speed 1: not a WAV file: it begins with ID3 an mp3" in err
    assert f"{tmp_path / '11.wav'} at speed 0.9: a FLAC file: convert it to WAV" in err
    logged = [line.split("\t") for line in log.read_text().splitlines()]
    assert len(bad_examples.bad_ids(str(log))) == 9
    assert sum("more than max_seconds" in reason for *_, reason in logged) == 3


@pytest.mark.parametrize("epochs_done", [1, 4])
def test_a_resumed_stream_continues_exactly_where_the_whole_one_was(tmp_path, epochs_done):
    splits = _manifest(tmp_path)
    vocabulary = data.build_vocabulary(splits["train"].all_transcripts())
    log = str(tmp_path / "log.tsv")
    whole = list(data.training_batches(splits["train"], vocabulary, CONFIG,
                                       log_path=log).take(30).as_numpy_iterator())
    consumed = epochs_done * 5 * CONFIG.batch_size  # epochs of 5 steps: mid-pass, mid-pool
    start = data.training_start(splits["train"], CONFIG, consumed, log_path=log)
    resumed = data.training_batches(splits["train"], vocabulary, CONFIG, start,
                                    log_path=log)
    for (inputs, labels), (whole_inputs, whole_labels) in zip(
            resumed.take(6).as_numpy_iterator(), whole[consumed // 4:]):
        np.testing.assert_array_equal(inputs["features"], whole_inputs["features"])
        np.testing.assert_array_equal(labels["labels"], whole_labels["labels"])


def test_prepared_shards_hold_the_clips_that_decode_and_train_as_the_folder(tmp_path):
    from applications import cli

    (tmp_path / "clips").mkdir()
    splits = _manifest(tmp_path / "clips")
    assert cli.main(["prepare", "speech_recognition", "--data", str(tmp_path / "clips"),
                     "--output", str(tmp_path / "prepared"), "--shards", "3",
                     "--set", "max_bad_share=0.3"]) == 0
    prepared = clips.list_clips(str(tmp_path / "prepared"), CONFIG)
    assert prepared["train"].count == 10 and len(prepared["train"].files) == 3  # 2 bad left out
    plain = dataclasses.replace(CONFIG, speed_perturbation=())
    folder = data.read_split(splits["train"], plain)
    shards = data.read_split(prepared["train"], plain)
    assert sorted(shards[1]) == sorted(folder[1]) and shards[1] != folder[1]  # shuffled
    for wave, text in zip(*shards):  # 16-bit WAV: equal to the decoded folder's clip
        np.testing.assert_allclose(wave, folder[0][folder[1].index(text)], atol=1 / 32767)
    assert sorted(prepared["train"].all_transcripts()) == sorted(folder[1])
    # Shuffled when written: the bounded samples (buckets, normalisation) are the shards'
    # head, read without the rest.
    head = list(data.sampled_waveforms(prepared["train"], plain, 4).as_numpy_iterator())
    assert len(head) == 4
    for wave, first in zip(head, shards[0]):
        np.testing.assert_array_equal(wave, first)
    with pytest.raises(Exception, match="holds audio at 8000 Hz, but sample_rate=16000"):
        clips.list_clips(str(tmp_path / "prepared"),
                         dataclasses.replace(CONFIG, sample_rate=16000))
