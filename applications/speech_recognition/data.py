"""Speech data: built-in DTMF clips, manifests, LibriSpeech-style folders and FSDD
recordings (folder or tarball) -> waveforms at the model's rate and transcripts -> tf.data."""

import csv
import io
import json
import os
import re
import tarfile

import numpy as np
import tensorflow as tf

from applications.common.text_files import READ_ERRORS, DataError, read_error, read_lines
from applications.speech_recognition import builtin_data
from applications.speech_recognition.features import FrontEnd, decode_wav, resample
from tfformer import wav

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
MANIFEST_SUFFIXES = (".tsv", ".csv", ".jsonl")


def normalize_transcript(text):
    """Lowercase, single spaces, no surrounding blanks."""
    return " ".join(text.lower().split())


def read_wav(source, sample_rate, name=None):
    """A WAV file path (or its bytes) -> mono float32 numpy waveform at `sample_rate`."""
    name = name or source
    try:
        if isinstance(source, (bytes, bytearray)):
            contents = bytes(source)
        else:
            with open(source, "rb") as handle:
                contents = handle.read()
        waveform = _decode_wav(contents, sample_rate)
    except OSError as error:
        raise DataError(f"cannot read {name}: {error}") from None
    except tf.errors.InvalidArgumentError as error:
        hint = " (FLAC is not supported: convert it to WAV)" if str(name).endswith(".flac") else ""
        raise DataError(f"{name} is not a readable WAV file{hint}: "
                        f"{wav.error_reason(error)}") from None
    return waveform.numpy()


@tf.function(input_signature=[tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.int32)])
def _decode_wav(contents, sample_rate):
    """The served signatures' decoder, traced once for the loaders."""
    return decode_wav(contents, sample_rate)


# ---- manifests: path and transcript per row --------------------------------------------------

def _manifest_rows(path):
    if path.endswith(".jsonl"):
        rows = []
        for number, line in enumerate(read_lines(path), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise DataError(f"{path}, line {number}: not JSON ({error.msg})") from None
        return rows
    delimiter = "\t" if path.endswith(".tsv") else ","
    return list(csv.DictReader(io.StringIO("\n".join(read_lines(path))), delimiter=delimiter))


def _read_manifest(path, sample_rate):
    waveforms, transcripts = [], []
    base = os.path.dirname(path)
    for number, row in enumerate(_manifest_rows(path), start=1):
        if "path" not in row or "transcript" not in row:
            raise DataError(f"{path}, row {number}: needs 'path' and 'transcript' fields, "
                            f"got {sorted(row)}")
        waveforms.append(read_wav(os.path.join(base, row["path"]), sample_rate))
        transcripts.append(normalize_transcript(row["transcript"]))
    return waveforms, transcripts


def _find_manifests(directory):
    found = {}
    for split, stems in (("train", ("train", "manifest")), ("val", ("val", "dev", "valid")),
                         ("test", ("test",))):
        for stem in stems:
            for suffix in MANIFEST_SUFFIXES:
                if os.path.isfile(os.path.join(directory, stem + suffix)):
                    found.setdefault(split, os.path.join(directory, stem + suffix))
    return found


# ---- LibriSpeech layout: <split>/<speaker>/<chapter>/<id>.trans.txt ---------------------------

def _librispeech_split(directory, transcript_path):
    top = os.path.relpath(transcript_path, directory).split(os.sep)[0].lower()
    if top.startswith(("dev", "val")):
        return "val"
    return "test" if top.startswith("test") else "train"


def _read_librispeech(directory, sample_rate):
    splits = {"train": ([], []), "val": ([], []), "test": ([], [])}
    for root, _, files in sorted(os.walk(directory)):
        for name in sorted(f for f in files if f.endswith(".trans.txt")):
            path = os.path.join(root, name)
            waveforms, transcripts = splits[_librispeech_split(directory, path)]
            for number, line in enumerate(read_lines(path), start=1):
                if not line.strip():
                    continue
                utterance, _, text = line.partition(" ")
                audio = os.path.join(root, utterance + ".wav")
                if not os.path.isfile(audio) and os.path.isfile(audio[:-4] + ".flac"):
                    audio = audio[:-4] + ".flac"
                waveforms.append(read_wav(audio, sample_rate))
                transcripts.append(normalize_transcript(text))
    return splits


# ---- FSDD: <digit>_<speaker>_<index>.wav in a folder or a tarball -----------------------------

def _fsdd_files(directory):
    """(name, bytes) of every FSDD recording under `directory`, unpacked or in *.tar.gz."""
    for root, _, files in sorted(os.walk(directory)):
        for name in sorted(files):
            path = os.path.join(root, name)
            if FSDD_NAME.match(name):
                with open(path, "rb") as handle:
                    yield name, handle.read()
            elif name.endswith((".tar.gz", ".tgz", ".tar")):
                # The whole archive is read before any recording is used, so that one cut
                # short or corrupt is named as such (gzip checks its CRC only at the end).
                try:
                    with tarfile.open(path) as archive:
                        recordings = [
                            (os.path.basename(member.name), archive.extractfile(member).read())
                            for member in sorted(archive.getmembers(), key=lambda m: m.name)
                            if member.isfile() and FSDD_NAME.match(os.path.basename(member.name))]
                        while archive.fileobj.read(1 << 20):  # to the end: the CRC check
                            pass
                except (tarfile.TarError, *READ_ERRORS) as error:
                    raise read_error(path, error) from None
                yield from recordings


def _read_fsdd(directory, config):
    """Index 0-4 is FSDD's official test split, 5-9 our validation, the rest training;
    with `holdout_speaker` that speaker's recordings are the validation set instead."""
    splits = {"train": ([], []), "val": ([], []), "test": ([], [])}
    for name, contents in _fsdd_files(directory):
        digit, speaker, index = FSDD_NAME.match(name).groups()
        if config.holdout_speaker:
            split = "val" if speaker == config.holdout_speaker else "train"
        else:
            split = "test" if int(index) < 5 else "val" if int(index) < 10 else "train"
        waveforms, transcripts = splits[split]
        waveforms.append(read_wav(contents, config.sample_rate, name=os.path.join(directory, name)))
        transcripts.append(DIGIT_WORDS[int(digit)])
    if config.holdout_speaker and not splits["val"][0]:
        raise DataError(f"no FSDD recordings of holdout_speaker={config.holdout_speaker!r} "
                        f"in {directory}")
    return splits


def connect_words(waveforms, transcripts, count, max_words, sample_rate, seed):
    """`count` utterances of 1..max_words recordings joined by 50-250 ms pauses."""
    rng = np.random.default_rng(seed)
    joined, texts = [], []
    for _ in range(count):
        picks = rng.integers(0, len(waveforms), size=rng.integers(1, max_words + 1))
        pieces = []
        for position, pick in enumerate(picks):
            if position:
                pieces.append(np.zeros(int(rng.uniform(0.05, 0.25) * sample_rate), np.float32))
            pieces.append(waveforms[pick])
        joined.append(np.concatenate(pieces))
        texts.append(" ".join(transcripts[pick] for pick in picks))
    return joined, texts


def perturb_speed(waveforms, transcripts, factors, sample_rate):
    """The recordings, then a copy of them played `factor` times faster for each factor.

    Playing faster shortens a clip and raises its pitch together, as a tape does
    (Ko et al. 2015): resample from `sample_rate` to `sample_rate / factor`.
    """
    if any(not factor > 0 for factor in factors):
        raise ValueError(f"speed_perturbation factors must be positive, got {tuple(factors)}")
    waves, texts = list(waveforms), list(transcripts)
    for factor in factors:
        waves += [resample(wave, sample_rate, sample_rate / factor).numpy() for wave in waveforms]
        texts += list(transcripts)
    return waves, texts


def _hold_out(splits, fraction, seed):
    waveforms, transcripts = splits["train"]
    order = np.random.default_rng(seed).permutation(len(waveforms))
    held = max(1, int(len(order) * fraction))
    pick = lambda indices: ([waveforms[i] for i in indices], [transcripts[i] for i in indices])
    splits["val"], splits["train"] = pick(order[:held]), pick(order[held:])
    return splits


def load_speech(directory, config):
    """{"train", "val", "test": (waveforms [float32 numpy], transcripts)} at the model's rate.

    `directory` None: built-in DTMF clips. Otherwise, first match wins:
    manifests (train/val/test .tsv/.csv/.jsonl with `path` and `transcript`
    columns), LibriSpeech-style `*.trans.txt` folders, FSDD recordings.
    """
    def fsdd_only(source):
        if config.holdout_speaker:
            raise DataError(f"holdout_speaker={config.holdout_speaker!r} picks an FSDD speaker, "
                            f"but the data is {source}")

    if directory is None:
        fsdd_only("the built-in DTMF clips")
        splits = builtin_data.builtin_splits(config.builtin_examples, config.sample_rate,
                                             config.seed)
    elif not os.path.isdir(directory):
        raise DataError(f"data directory {directory} does not exist")
    else:
        manifests = _find_manifests(directory)
        if manifests:
            fsdd_only(f"manifests in {directory}")
            splits = {split: _read_manifest(path, config.sample_rate)
                      for split, path in manifests.items()}
        elif any(f.endswith(".trans.txt") for _, _, fs in os.walk(directory) for f in fs):
            fsdd_only(f"a LibriSpeech-style tree in {directory}")
            splits = _read_librispeech(directory, config.sample_rate)
        else:
            splits = _read_fsdd(directory, config)
        for split in ("train", "val", "test"):
            splits.setdefault(split, ([], []))
        if not splits["train"][0]:
            raise DataError(f"no training audio found in {directory}: expected train.tsv/.csv/"
                            ".jsonl manifests, LibriSpeech-style *.trans.txt folders, or FSDD "
                            "recordings named <digit>_<speaker>_<index>.wav")
        if not splits["val"][0]:
            splits = _hold_out(splits, config.val_fraction, config.seed)
    if config.speed_perturbation:
        splits["train"] = perturb_speed(*splits["train"], config.speed_perturbation,
                                        config.sample_rate)
    if config.connected_digits > 0:
        for split, seed_offset in (("train", 10), ("val", 11), ("test", 12)):
            waveforms, transcripts = splits[split]
            if waveforms:
                count = config.connected_examples if split == "train" else len(waveforms)
                splits[split] = connect_words(waveforms, transcripts, count,
                                              config.connected_digits, config.sample_rate,
                                              config.seed + seed_offset)
    return _drop_long(splits, config)


def _drop_long(splits, config):
    limit = int(config.max_seconds * config.sample_rate)
    waveforms, transcripts = splits["train"]
    keep = [i for i, w in enumerate(waveforms) if len(w) <= limit]
    if len(keep) < len(waveforms):
        print(f"data: dropped {len(waveforms) - len(keep)} training clips longer than "
              f"max_seconds={config.max_seconds}")
        splits["train"] = ([waveforms[i] for i in keep], [transcripts[i] for i in keep])
    return splits


OUTPUT_UNITS = ("characters", "words")


def transcript_symbols(text, units):
    """The CTC symbols of one transcript: its characters (spaces included) or its words."""
    if units not in OUTPUT_UNITS:
        raise ValueError(f"output_units must be one of {OUTPUT_UNITS}, got {units!r}")
    return text.split() if units == "words" else list(text)


def symbol_separator(units):
    """What joins decoded symbols back into a transcript."""
    return " " if units == "words" else ""


def build_vocabulary(transcripts, units="characters"):
    """Sorted symbols of the training transcripts (the CTC blank is added after them)."""
    return sorted({symbol for text in transcripts for symbol in transcript_symbols(text, units)})


def encode_transcripts(transcripts, vocabulary, units="characters"):
    """Symbol ids; symbols outside the vocabulary are dropped."""
    index = {symbol: i for i, symbol in enumerate(vocabulary)}
    return [[index[s] for s in transcript_symbols(text, units) if s in index]
            for text in transcripts]


def _ragged(arrays, dtype):
    lengths = [len(a) for a in arrays]
    values = np.concatenate([np.asarray(a, dtype) for a in arrays]) if arrays else np.zeros(0, dtype)
    return tf.RaggedTensor.from_row_lengths(values, np.asarray(lengths, np.int64))


def make_dataset(waveforms, transcripts, vocabulary, config, training):
    """Batches of ({"features" (B, F, M), "feature_lengths" (B,)},
    {"labels" (B, L), "label_lengths" (B,)}), bucketed by length; features cached."""
    if not waveforms:
        raise DataError("no audio clips to make a dataset from")
    front_end = FrontEnd(config)
    labels = encode_transcripts(transcripts, vocabulary, config.output_units)
    dataset = tf.data.Dataset.from_tensor_slices(
        (_ragged(waveforms, np.float32), _ragged(labels, np.int32)))

    def features(waveform, label):
        frames, count = front_end.one(waveform)
        return ({"features": frames, "feature_lengths": count},
                {"labels": label, "label_lengths": tf.size(label)})

    dataset = dataset.map(features, num_parallel_calls=tf.data.AUTOTUNE).cache()
    if training:
        dataset = dataset.shuffle(len(waveforms), seed=config.seed, reshuffle_each_iteration=True)
    frames = sorted(1 + len(w) // front_end.frame_step for w in waveforms)
    boundaries = sorted({frames[int(len(frames) * q)] for q in (0.25, 0.5, 0.75)} - {0})
    dataset = dataset.bucket_by_sequence_length(
        lambda x, y: x["feature_lengths"], boundaries, [config.batch_size] * (len(boundaries) + 1),
        padded_shapes=({"features": [None, config.num_mel_bins], "feature_lengths": []},
                       {"labels": [None], "label_lengths": []}))
    return dataset.prefetch(tf.data.AUTOTUNE)
