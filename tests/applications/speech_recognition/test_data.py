"""Speech data: loaders for every layout, the front end and the tf.data pipeline."""

import dataclasses
import json
import tarfile

import numpy as np
import pytest
import tensorflow as tf

from applications.common.text_files import DataError
from applications.speech_recognition import builtin_data, data
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
    with pytest.raises(DataError, match="19-198-0002.wav is not a readable WAV file: not a WAV"):
        data.load_speech(str(tmp_path), CONFIG)
    with pytest.raises(DataError, match="does not exist"):
        data.load_speech(str(tmp_path / "missing"), CONFIG)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no training audio found"):
        data.load_speech(str(tmp_path / "empty"), CONFIG)


def test_connected_words_join_recordings_and_transcripts():
    waves = [np.ones(100, np.float32), 2 * np.ones(50, np.float32)]
    joined, texts = data.connect_words(waves, ["one", "two"], 20, 3, 8000, seed=0)
    assert len(joined) == 20 and any(len(t.split()) == 3 for t in texts)
    for wave, text in zip(joined, texts):
        words = text.split()
        assert 1 <= len(words) <= 3
        assert np.count_nonzero(wave == 1) == 100 * words.count("one")
        assert np.count_nonzero(wave == 2) == 50 * words.count("two")


def test_speed_perturbation_adds_faster_and_slower_copies_of_training_clips_only(tmp_path):
    _fsdd_folder(tmp_path)
    config = dataclasses.replace(CONFIG, speed_perturbation=(0.9, 1.1))
    plain = data.load_speech(str(tmp_path), CONFIG)
    perturbed = data.load_speech(str(tmp_path), config)
    waves, texts = perturbed["train"]
    count = len(plain["train"][0])
    assert len(waves) == 3 * count and texts == plain["train"][1] * 3
    assert all(np.array_equal(a, b) for a, b in zip(waves[:count], plain["train"][0]))
    slow, fast = waves[count], waves[2 * count]
    assert abs(len(slow) - len(waves[0]) / 0.9) <= 1 and abs(len(fast) - len(waves[0]) / 1.1) <= 1
    # Pitch moves with tempo: a 300 Hz tone ("zero") becomes 270 Hz and 330 Hz.
    assert abs(_peak_frequency(slow, 8000) - 270) < 12
    assert abs(_peak_frequency(fast, 8000) - 330) < 12
    for split in ("val", "test"):
        assert all(np.array_equal(a, b) for a, b in zip(perturbed[split][0], plain[split][0]))
    with pytest.raises(ValueError, match="factors must be positive"):
        data.perturb_speed(waves, texts, (0.0,), 8000)


def test_word_units_give_one_symbol_per_word():
    texts = ["nine one", "one", "zero nine nine"]
    vocabulary = data.build_vocabulary(texts, "words")
    assert vocabulary == ["nine", "one", "zero"]
    assert data.encode_transcripts(texts + ["one eight"], vocabulary, "words") == [
        [0, 1], [1], [2, 0, 0], [1]]  # "eight" is unknown: dropped
    assert data.build_vocabulary(["ab a"]) == [" ", "a", "b"]
    with pytest.raises(ValueError, match="output_units must be one of"):
        data.build_vocabulary(texts, "phonemes")


def test_dataset_batches_features_and_labels_with_their_lengths():
    waves, texts = builtin_data.generate_split(40, 8000, seed=0)
    vocabulary = data.build_vocabulary(texts)
    config = dataclasses.replace(CONFIG, batch_size=8)
    seen = 0
    for x, y in data.make_dataset(waves, texts, vocabulary, config, training=True):
        lengths = x["feature_lengths"].numpy()
        assert x["features"].shape[1] == lengths.max()
        for row, count in zip(y["labels"].numpy(), y["label_lengths"].numpy()):
            text = "".join(vocabulary[i] for i in row[:count])
            assert text in texts
        seen += len(lengths)
    assert seen == 40
    with pytest.raises(DataError, match="no audio clips"):
        data.make_dataset([], [], vocabulary, config, training=False)


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
    with pytest.raises(DataError, match="pcm8.wav is not a readable WAV file: .*no fmt chunk"):
        data.load_speech(str(tmp_path), CONFIG)


def test_the_global_statistics_come_from_a_bounded_sample_spread_across_the_clips():
    from applications.speech_recognition.train import _normalization_sample

    waveforms = [np.full(10, i, np.float32) for i in range(10)]
    transcripts = [str(i) for i in range(10)]
    chosen_waveforms, chosen = _normalization_sample((waveforms, transcripts), 4)
    assert chosen == ["0", "3", "6", "9"]
    assert [int(w[0]) for w in chosen_waveforms] == [0, 3, 6, 9]
    assert _normalization_sample((waveforms, transcripts), 20)[1] == transcripts
