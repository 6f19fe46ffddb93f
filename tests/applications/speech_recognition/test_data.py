"""Speech data: loaders for every layout, the front end and the tf.data pipeline."""

import dataclasses
import json
import tarfile

import numpy as np
import pytest
import tensorflow as tf

from applications.common.text_files import DataError
from applications.speech_recognition import builtin_data, clips, data
from applications.speech_recognition.config import PRESETS, SpeechRecognitionConfig
from applications.speech_recognition.features import FrontEnd, decode_wav, resample
from tests.support.wav_files import ENCODINGS, encode

CONFIG = SpeechRecognitionConfig(**PRESETS["tiny"])


def _tone(frequency, seconds, rate, channels=1):
    time = np.arange(int(seconds * rate)) / rate
    wave = 0.5 * np.sin(2 * np.pi * frequency * time).astype(np.float32)
    return np.repeat(wave[:, None], channels, axis=1)


def _wav(frequency=440.0, seconds=0.3, rate=8000, channels=1):
    return tf.audio.encode_wav(_tone(frequency, seconds, rate, channels), rate).numpy()


def test_builtin_clips_are_reproducible_and_transcribed_by_symbol():
    first = builtin_data.builtin_splits(40, 8000, seed=3)
    second = builtin_data.builtin_splits(40, 8000, seed=3)
    assert [len(s[0]) for s in first.values()] == [32, 4, 4]
    for (waves_a, texts_a), (waves_b, texts_b) in zip(first.values(), second.values()):
        assert texts_a == texts_b
        assert all(np.array_equal(a, b) for a, b in zip(waves_a, waves_b))
    for text in first["train"][1]:
        assert all(symbol in builtin_data.SYMBOLS for symbol in text.split(" "))
    with pytest.raises(ValueError, match="'A' is not a keypad symbol"):
        builtin_data.tone_frequencies("A")


def _peak_frequency(wave, rate):
    spectrum = np.abs(np.fft.rfft(wave))
    return np.fft.rfftfreq(len(wave), 1 / rate)[np.argmax(spectrum)]


def test_resampling_keeps_frequencies_and_removes_aliases():
    wave = _tone(440, 1.0, 16000)[:, 0]
    down = resample(wave, 16000, 8000).numpy()
    assert len(down) == 8000 and abs(_peak_frequency(down, 8000) - 440) < 2
    up = resample(wave, 16000, 44100).numpy()
    assert len(up) == 44100 and abs(_peak_frequency(up, 44100) - 440) < 2
    # 7 kHz cannot exist at 8 kHz: it must be filtered out, not folded to 1 kHz.
    alias = resample(_tone(7000, 1.0, 16000)[:, 0], 16000, 8000).numpy()
    assert np.abs(alias[100:-100]).max() < 0.01


def test_wav_decoding_mixes_stereo_down_and_resamples():
    mono = decode_wav(_wav(rate=8000), 8000).numpy()
    stereo = decode_wav(_wav(rate=8000, channels=2), 8000).numpy()
    np.testing.assert_allclose(stereo, mono, atol=1e-6)
    resampled = decode_wav(_wav(rate=16000, seconds=0.3), 8000).numpy()
    assert len(resampled) == 2400
    np.testing.assert_allclose(resampled[200:-200], mono[200:-200], atol=2e-3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="RIFF/WAVE header"):
        decode_wav(b"this is not a wav file", 8000)


def test_front_end_counts_only_frames_of_real_samples():
    front_end = FrontEnd(CONFIG)  # 8 kHz: 200-sample frames, 80-sample hop
    waves = np.zeros((3, 1000), np.float32)
    features, frames = front_end(waves, [1000, 280, 0])
    assert features.shape == (3, 11, CONFIG.num_mel_bins)
    assert frames.numpy().tolist() == [11, 2, 0]


def _fsdd_folder(root, speakers=("jackson", "theo"), indices=(1, 6, 12, 30)):
    names = []
    for digit in (0, 3, 7):
        for speaker in speakers:
            for index in indices:
                name = f"{digit}_{speaker}_{index}.wav"
                (root / name).write_bytes(_wav(300 + 100 * digit, 0.2))
                names.append(name)
    return names


def test_fsdd_folder_uses_the_official_test_split_and_5_to_9_for_validation(tmp_path):
    _fsdd_folder(tmp_path)
    splits = data.load_speech(str(tmp_path), CONFIG)
    assert [len(splits[s][0]) for s in ("train", "val", "test")] == [12, 6, 6]
    assert set(splits["train"][1]) == {"zero", "three", "seven"}


def test_fsdd_tarball_and_leave_one_speaker_out(tmp_path):
    folder = tmp_path / "recordings"
    folder.mkdir()
    names = _fsdd_folder(folder)
    archive_dir = tmp_path / "archive"
    archive_dir.mkdir()
    with tarfile.open(archive_dir / "fsdd_train_recordings.tar.gz", "w:gz") as archive:
        for name in names:
            archive.add(folder / name, arcname=f"recordings/{name}")
    config = dataclasses.replace(CONFIG, holdout_speaker="theo")
    splits = data.load_speech(str(archive_dir), config)
    assert [len(splits[s][0]) for s in ("train", "val", "test")] == [12, 12, 0]
    with pytest.raises(DataError, match="holdout_speaker='nobody'"):
        data.load_speech(str(archive_dir), dataclasses.replace(CONFIG, holdout_speaker="nobody"))


@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".jsonl"])
def test_manifests_in_every_format(tmp_path, suffix):
    (tmp_path / "audio").mkdir()
    rows = []
    for i, text in enumerate(["Hello  World", "good morning", "yes"]):
        (tmp_path / "audio" / f"{i}.wav").write_bytes(_wav(200 + 50 * i, 0.2, rate=16000))
        rows.append({"path": f"audio/{i}.wav", "transcript": text})
    for split, chosen in (("train", rows), ("test", rows[:1])):
        path = tmp_path / (split + suffix)
        if suffix == ".jsonl":
            path.write_text("".join(json.dumps(r) + "\n" for r in chosen))
        else:
            sep = "\t" if suffix == ".tsv" else ","
            path.write_text("path" + sep + "transcript\n"
                            + "".join(f"{r['path']}{sep}{r['transcript']}\n" for r in chosen))
    splits = data.load_speech(str(tmp_path), dataclasses.replace(CONFIG, val_fraction=0.34))
    assert len(splits["train"][0]) == 2 and len(splits["val"][0]) == 1
    assert splits["test"][1] == ["hello world"]
    assert len(splits["test"][0][0]) == 1600  # 0.2 s resampled from 16 kHz to 8 kHz


def test_librispeech_layout_and_errors_that_name_the_file(tmp_path):
    chapter = tmp_path / "train-clean" / "19" / "198"
    chapter.mkdir(parents=True)
    (chapter / "19-198-0001.wav").write_bytes(_wav())
    (chapter / "19-198-0002.wav").write_bytes(_wav(600))
    (chapter / "19-198.trans.txt").write_text("19-198-0001 HELLO THERE\n19-198-0002 GOOD BYE\n")
    splits = data.load_speech(str(tmp_path), dataclasses.replace(CONFIG, val_fraction=0.5))
    assert sorted(splits["train"][1] + splits["val"][1]) == ["good bye", "hello there"]
    (chapter / "19-198-0002.wav").write_bytes(b"not audio at all")
    with pytest.raises(DataError, match="too many bad examples in the .* clips: .*"
                       "19-198-0002.wav: not a WAV file: it begins with not audio at"):
        data.load_speech(str(tmp_path), CONFIG)
    with pytest.raises(DataError, match="does not exist"):
        data.load_speech(str(tmp_path / "missing"), CONFIG)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no training audio found"):
        data.load_speech(str(tmp_path / "empty"), CONFIG)


def _streamed(split, config, training=True):
    """(waveforms, transcripts) of one pass of what `split` streams, in listed order."""
    src = data.source(split, config, training)
    return tuple(zip(*[(e["waveform"], e["transcript"].decode()) for e in data.waveforms(
        src, src.records, config, src.count).as_numpy_iterator()]))


def test_connected_utterances_join_recordings_and_transcripts_as_they_are_read():
    split = clips.in_memory("train", ["one", "two"], waveform=[
        np.ones(100, np.float32), 2 * np.ones(50, np.float32)])
    config = dataclasses.replace(CONFIG, connected_digits=3, connected_examples=20)
    joined, texts = _streamed(split, config)
    assert len(joined) == 20 and any(len(t.split()) == 3 for t in texts)
    for wave, text in zip(joined, texts):
        words = text.split()
        assert 1 <= len(words) <= 3
        assert np.count_nonzero(wave == 1) == 100 * words.count("one")
        assert np.count_nonzero(wave == 2) == 50 * words.count("two")
        pause = len(wave) - 100 * words.count("one") - 50 * words.count("two")
        assert 400 * (len(words) - 1) <= pause <= 2000 * (len(words) - 1)  # 50-250 ms
    again, _ = _streamed(split, config)  # the same utterances every pass
    assert all(np.array_equal(a, b) for a, b in zip(joined, again))
    # Training streams them in shuffled passes, batched with speed-perturbed copies.
    config = dataclasses.replace(config, batch_size=4, speed_perturbation=(0.9, 1.1))
    # The recordings' transcripts are single words; the utterances' labels hold the spaces.
    vocabulary = data.training_vocabulary(split.all_transcripts(), config)
    assert vocabulary == [" ", "e", "n", "o", "t", "w"]
    batches = list(data.training_batches(split, vocabulary, config).take(10))
    lengths = np.concatenate([labels["label_lengths"].numpy() for _, labels in batches])
    assert len(lengths) == 40 and max(lengths) == 11  # three words: "one two one"
    assert all(length % 4 == 3 for length in lengths)  # k words: 3k letters, k - 1 spaces
    assert data.training_vocabulary(["one"], dataclasses.replace(config, connected_digits=1)
                                    ) == ["e", "n", "o"]  # one word at a time: no space


def test_speed_perturbation_streams_faster_and_slower_copies_of_training_clips_only(tmp_path):
    _fsdd_folder(tmp_path)
    config = dataclasses.replace(CONFIG, speed_perturbation=(0.9, 1.1))
    split = clips.list_clips(str(tmp_path), config)["train"]
    plain_waves, plain_texts = _streamed(split, CONFIG)
    waves, texts = _streamed(split, config)
    assert len(waves) == 3 * len(plain_waves)  # each clip, then its two copies
    assert list(texts) == [t for t in plain_texts for _ in range(3)]
    assert all(np.array_equal(a, b) for a, b in zip(waves[::3], plain_waves))
    slow, fast = waves[1], waves[2]
    assert abs(len(slow) - len(waves[0]) / 0.9) <= 1 and abs(len(fast) - len(waves[0]) / 1.1) <= 1
    # Pitch moves with tempo: a 300 Hz tone ("zero") becomes 270 Hz and 330 Hz.
    assert abs(_peak_frequency(slow, 8000) - 270) < 12
    assert abs(_peak_frequency(fast, 8000) - 330) < 12
    assert len(_streamed(split, config, training=False)[0]) == len(plain_waves)
    with pytest.raises(ValueError, match="speed_perturbation must be above 0"):
        dataclasses.replace(CONFIG, speed_perturbation=(0.0,))


def test_word_units_give_one_symbol_per_word():
    texts = ["nine one", "one", "zero nine nine"]
    vocabulary = data.build_vocabulary(texts, "words")
    assert vocabulary == ["nine", "one", "zero"]
    assert data.encode_transcripts(texts + ["one eight"], vocabulary, "words") == [
        [0, 1], [1], [2, 0, 0], [1]]  # "eight" is unknown: dropped
    assert data.build_vocabulary(["ab a"]) == [" ", "a", "b"]
    with pytest.raises(ValueError, match="output_units must be one of"):
        data.build_vocabulary(texts, "phonemes")


def test_training_batches_hold_every_clip_once_a_pass_with_features_and_labels():
    waves, texts = builtin_data.generate_split(40, 8000, seed=0)
    texts = [f"{i} {t}" for i, t in enumerate(texts)]  # tells the clips apart
    vocabulary = data.build_vocabulary(texts)
    config = dataclasses.replace(CONFIG, batch_size=5)
    split = clips.in_memory("train", texts, waveform=waves)
    boundaries = data.frame_boundaries([len(w) for w in waves], config)
    seen, ranges = [], []
    # A pool is 16 batches of 5 clips: 2 pools are 4 passes of 40.
    for x, y in data.training_batches(split, vocabulary, config).take(32):
        lengths = x["feature_lengths"].numpy()
        assert len(lengths) == 5 and x["features"].shape[1] == lengths.max()
        ranges.append((lengths.min(), lengths.max()))
        for row, count in zip(y["labels"].numpy(), y["label_lengths"].numpy()):
            seen.append("".join(vocabulary[i] for i in row[:count]))
    assert sorted(seen) == sorted(texts * 4)
    for pool in (ranges[:16], ranges[16:]):  # sorted by length: the batches do not overlap
        pool = sorted(pool)
        assert all(high <= next_low for (_, high), (next_low, _) in zip(pool, pool[1:]))
    val_data = data.batches(split, vocabulary, config, boundaries)
    assert not val_data.options().autotune.enabled  # example_stream.for_evaluation
    val = [len(y["labels"]) for _, y in val_data]
    assert sum(val) == 40
    with pytest.raises(DataError, match="no audio clips in the val split"):
        data.batches(clips.in_memory("val", [], path=[]), vocabulary, config, boundaries)


def test_a_manifest_of_every_wav_encoding_loads_as_the_reference_decode(tmp_path):
    """8-, 16-, 24-, 32-bit PCM, 32- and 64-bit float, plain and extensible headers, stereo:
    the training loader reads each as the reference decoder does, mixed to mono."""
    stereo = _tone(440.0, 0.25, CONFIG.sample_rate, channels=2) * np.array([1.0, 0.5])
    references, rows = [], []
    for encoding in ENCODINGS:
        contents, reference = encode(stereo, CONFIG.sample_rate, encoding)
        (tmp_path / f"{encoding}.wav").write_bytes(contents)
        references.append(reference.mean(axis=1))
        rows.append(f"{encoding}.wav\t{encoding}\n")
    (tmp_path / "train.tsv").write_text("path\ttranscript\n" + "".join(rows))
    (tmp_path / "val.tsv").write_text("path\ttranscript\n" + rows[0])
    waveforms, transcripts = data.load_speech(str(tmp_path), CONFIG)["train"]
    assert transcripts == ENCODINGS
    for encoding, waveform, reference in zip(ENCODINGS, waveforms, references):
        np.testing.assert_allclose(waveform, reference, atol=1e-6, rtol=0, err_msg=encoding)
    (tmp_path / "pcm8.wav").write_bytes(b"RIFF\x04\0\0\0WAVE")
    with pytest.raises(DataError, match="pcm8.wav: WAV file has no fmt chunk"):
        data.load_speech(str(tmp_path), CONFIG)


def test_the_global_statistics_come_from_a_bounded_sample_spread_across_the_clips():
    waveforms = [np.full(10 + i, i, np.float32) for i in range(10)]
    split = clips.in_memory("train", [str(i) for i in range(10)], waveform=waveforms)
    chosen = list(data.sampled_waveforms(split, CONFIG, 4).as_numpy_iterator())
    assert [int(w[0]) for w in chosen] == [0, 3, 6, 9]
    assert len(list(data.sampled_waveforms(split, CONFIG, 20).as_numpy_iterator())) == 10
    features = list(data.normalization_features(split, CONFIG).as_numpy_iterator())
    assert len(features) == 10 and all(f.shape[0] == 1 for f in features)  # (1, F, M) each
