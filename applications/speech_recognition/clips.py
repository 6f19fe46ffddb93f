"""Speech data listed as records, not decoded: the audio stays on disk until tf.data reads it.

`list_clips(directory, config)` gives {"train", "val", "test"} -> ClipSplit.
Layouts (the first that matches):

- manifests: `train|manifest`, `val|dev|valid`, `test` as .tsv, .csv or .jsonl with
  `path` (relative to the manifest) and `transcript` fields;
- LibriSpeech-style trees: `<split>/<speaker>/<chapter>/<id>.trans.txt` beside the audio;
- FSDD recordings, `<digit>_<speaker>_<index>.wav`, in a folder or a tarball (a tarball's
  recordings are read into memory: FSDD is 3,000 short clips);
- a `tfformer prepare speech_recognition` directory (TFRecord shards);
- none (`directory` None): the built-in DTMF clips, generated.

Transcripts are listed with the paths (text is small; audio is not). Audio that does not
decode is a bad example when it is streamed (`applications.common.bad_examples`).
"""

import csv
import dataclasses
import io
import json
import os
import re
import tarfile

import numpy as np
import tensorflow as tf

from applications.common import shards
from applications.common.record_split import RecordSplit
from applications.common.text_files import READ_ERRORS, DataError, read_error, read_lines
from applications.speech_recognition import builtin_data

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
MANIFEST_SUFFIXES = (".tsv", ".csv", ".jsonl")
APPLICATION = "speech_recognition"


def normalize_transcript(text):
    """Lowercase, single spaces, no surrounding blanks."""
    return " ".join(text.lower().split())


@dataclasses.dataclass
class ClipSplit(RecordSplit):
    """One split's clips (`RecordSplit`): dicts with an int64 "id", a "transcript" string
    and one of "path" (an audio file), "encoded" (WAV bytes) or "waveform" (float32 at the
    model's rate). `transcripts` lists them, in record order, when they are known without
    reading the shards; `column` is (kind, [value per record]) when the split was listed in
    memory (connected utterances pick recordings from it by index)."""

    transcripts: tuple = ()
    column: tuple = ()

    def shuffle_buffer(self, config):
        """Records a pass shuffles at a time: all of a listing (paths are small), prepared
        shards in blocks of `config.shuffle_buffer` (they were shuffled when written)."""
        return config.shuffle_buffer if self.files else None

    def held_out(self, fraction):
        train, val = super().held_out(fraction)
        held = max(1, int(self.count * fraction))
        chosen = [(i + 1) * held // self.count != i * held // self.count
                  for i in range(len(self.transcripts))]
        train.transcripts = tuple(t for t, c in zip(self.transcripts, chosen) if not c)
        val.transcripts = tuple(t for t, c in zip(self.transcripts, chosen) if c)
        if self.column:
            kind, values = self.column
            train.column = (kind, [v for v, c in zip(values, chosen) if not c])
            val.column = (kind, [v for v, c in zip(values, chosen) if c])
        return train, val

    def share(self, worker, workers):
        shared, how = super().share(worker, workers)
        if workers > 1:
            by_example = how == "by example"
            shared.transcripts = self.transcripts[worker::workers] if by_example else ()
            shared.column = ((self.column[0], self.column[1][worker::workers])
                             if by_example and self.column else ())
        return shared, how

    def all_transcripts(self):
        """Every transcript, in record order: listed, or read from the shards (text only)."""
        if self.transcripts or not self.count:
            return list(self.transcripts)
        return [t.decode("utf-8") for t in
                self.records.map(lambda record: record["transcript"]).as_numpy_iterator()]


def in_memory(name, transcripts, **column):
    """A ClipSplit listed in memory: `transcripts` and one column, path=[...],
    encoded=[...] or waveform=[float32 arrays]."""
    (kind, values), = column.items()
    listed = list(values)
    count = len(transcripts)
    if kind == "waveform":
        values = tf.ragged.constant([], tf.float32, ragged_rank=1) if not count else \
            tf.RaggedTensor.from_row_lengths(np.concatenate(values).astype(np.float32),
                                             [len(v) for v in values])
    records = tf.data.Dataset.from_tensor_slices({
        kind: values if count else tf.zeros([0], tf.string),
        "transcript": tf.constant(list(transcripts), tf.string, shape=[count]),
        "id": tf.range(count, dtype=tf.int64)})
    return ClipSplit(records, count, name, transcripts=tuple(transcripts),
                     column=(kind, listed))


# ---- manifests: path and transcript per row ------------------------------------------------

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


def _manifest(name, path):
    paths, transcripts = [], []
    base = os.path.dirname(path)
    for number, row in enumerate(_manifest_rows(path), start=1):
        if "path" not in row or "transcript" not in row:
            raise DataError(f"{path}, row {number}: needs 'path' and 'transcript' fields, "
                            f"got {sorted(row)}")
        paths.append(os.path.join(base, row["path"]))
        transcripts.append(normalize_transcript(row["transcript"]))
    return in_memory(name, transcripts, path=paths)


def _find_manifests(directory):
    found = {}
    for split, stems in (("train", ("train", "manifest")), ("val", ("val", "dev", "valid")),
                         ("test", ("test",))):
        for stem in stems:
            for suffix in MANIFEST_SUFFIXES:
                if os.path.isfile(os.path.join(directory, stem + suffix)):
                    found.setdefault(split, os.path.join(directory, stem + suffix))
    return found


# ---- LibriSpeech layout: <split>/<speaker>/<chapter>/<id>.trans.txt -------------------------

def _librispeech_split(directory, transcript_path):
    top = os.path.relpath(transcript_path, directory).split(os.sep)[0].lower()
    if top.startswith(("dev", "val")):
        return "val"
    return "test" if top.startswith("test") else "train"


def _librispeech(directory):
    listed = {"train": ([], []), "val": ([], []), "test": ([], [])}
    for root, _, files in sorted(os.walk(directory)):
        for name in sorted(f for f in files if f.endswith(".trans.txt")):
            path = os.path.join(root, name)
            paths, transcripts = listed[_librispeech_split(directory, path)]
            for line in read_lines(path):
                if not line.strip():
                    continue
                utterance, _, text = line.partition(" ")
                audio = os.path.join(root, utterance + ".wav")
                if not os.path.isfile(audio) and os.path.isfile(audio[:-4] + ".flac"):
                    audio = audio[:-4] + ".flac"
                paths.append(audio)
                transcripts.append(normalize_transcript(text))
    return {name: in_memory(name, transcripts, path=paths)
            for name, (paths, transcripts) in listed.items() if paths}


# ---- FSDD: <digit>_<speaker>_<index>.wav in a folder or a tarball ---------------------------

def _fsdd_files(directory):
    """(name, path or None, bytes or None) of every FSDD recording under `directory`: files
    by path, a tarball's members by their bytes."""
    for root, _, files in sorted(os.walk(directory)):
        for name in sorted(files):
            path = os.path.join(root, name)
            if FSDD_NAME.match(name):
                yield name, path, None
            elif name.endswith((".tar.gz", ".tgz", ".tar")):
                # The whole archive is read before any recording is used, so that one cut
                # short or corrupt is named as such (gzip checks its CRC only at the end).
                try:
                    with tarfile.open(path) as archive:
                        recordings = [
                            (os.path.basename(member.name), None,
                             archive.extractfile(member).read())
                            for member in sorted(archive.getmembers(), key=lambda m: m.name)
                            if member.isfile() and FSDD_NAME.match(os.path.basename(member.name))]
                        while archive.fileobj.read(1 << 20):  # to the end: the CRC check
                            pass
                except (tarfile.TarError, *READ_ERRORS) as error:
                    raise read_error(path, error) from None
                yield from recordings


def _fsdd(directory, config):
    """Index 0-4 is FSDD's official test split, 5-9 our validation, the rest training;
    with `holdout_speaker` that speaker's recordings are the validation set instead."""
    listed = {"train": ([], []), "val": ([], []), "test": ([], [])}
    in_archive = False
    for name, path, contents in _fsdd_files(directory):
        digit, speaker, index = FSDD_NAME.match(name).groups()
        if config.holdout_speaker:
            split = "val" if speaker == config.holdout_speaker else "train"
        else:
            split = "test" if int(index) < 5 else "val" if int(index) < 10 else "train"
        sources, transcripts = listed[split]
        in_archive = in_archive or contents is not None
        sources.append(contents if contents is not None else path)
        transcripts.append(DIGIT_WORDS[int(digit)])
    if config.holdout_speaker and not listed["val"][0]:
        raise DataError(f"no FSDD recordings of holdout_speaker={config.holdout_speaker!r} "
                        f"in {directory}")
    kind = "encoded" if in_archive else "path"
    return {name: in_memory(name, transcripts, **{kind: sources})
            for name, (sources, transcripts) in listed.items() if sources}


# ---- prepared shards --------------------------------------------------------------------------

def _parse_example(serialized):
    example = tf.io.parse_single_example(serialized, {
        "audio": tf.io.FixedLenFeature([], tf.string),
        "transcript": tf.io.FixedLenFeature([], tf.string)})
    return {"encoded": example["audio"], "transcript": example["transcript"]}


def read_shards(paths):
    """Records of `tfformer prepare speech_recognition` shards."""
    return shards.read_records(paths, _parse_example)


def _prepared(directory, config):
    metadata = shards.read_metadata(directory, APPLICATION)
    if metadata.get("sample_rate") != config.sample_rate:
        raise DataError(f"{directory} holds audio at {metadata.get('sample_rate')} Hz, but "
                        f"sample_rate={config.sample_rate}: prepare it again with --set "
                        f"sample_rate={config.sample_rate}")
    return {name: ClipSplit(read_shards([p for p, _ in intact]), sum(n for _, n in intact),
                            name, files=tuple(intact), read_files=read_shards)
            for name, intact in shards.usable_shards(directory, metadata,
                                                     config.max_bad_share, "clips").items()}


def list_clips(directory, config):
    """{"train", "val", "test"} -> ClipSplit; nothing is decoded. Without a validation split,
    `val_fraction` of the training clips, evenly spread, is held out."""
    def fsdd_only(source):
        if config.holdout_speaker:
            raise DataError(f"holdout_speaker={config.holdout_speaker!r} picks an FSDD speaker, "
                            f"but the data is {source}")

    if directory is None:
        fsdd_only("the built-in DTMF clips")
        generated = builtin_data.builtin_splits(config.builtin_examples, config.sample_rate,
                                                config.seed)
        return {name: in_memory(name, transcripts, waveform=waveforms)
                for name, (waveforms, transcripts) in generated.items()}
    if not os.path.isdir(directory):
        raise DataError(f"data directory {directory} does not exist")
    manifests = _find_manifests(directory)
    if shards.is_prepared(directory):
        fsdd_only(f"a prepared directory, {directory}")
        splits = _prepared(directory, config)
    elif manifests:
        fsdd_only(f"manifests in {directory}")
        splits = {name: _manifest(name, path) for name, path in manifests.items()}
    elif any(f.endswith(".trans.txt") for _, _, fs in os.walk(directory) for f in fs):
        fsdd_only(f"a LibriSpeech-style tree in {directory}")
        splits = _librispeech(directory)
    else:
        splits = _fsdd(directory, config)
    if not splits.get("train") or not splits["train"].count:
        raise DataError(f"no training audio found in {directory}: expected train.tsv/.csv/"
                        ".jsonl manifests, LibriSpeech-style *.trans.txt folders, FSDD "
                        "recordings named <digit>_<speaker>_<index>.wav, or a `tfformer "
                        "prepare` directory")
    if not splits.get("val"):
        splits["train"], splits["val"] = splits["train"].held_out(config.val_fraction)
    for name in ("val", "test"):
        splits.setdefault(name, in_memory(name, [], path=[]))
    return splits
