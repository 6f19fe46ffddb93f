"""Speech data, streamed: clips listed (`clips`), then read, decoded, resampled, perturbed,
joined into connected utterances and turned into log-mel features inside tf.data.

`training_batches` reads the training clips pass after pass from any position
(`applications.common.example_stream`) and batches clips of like length
(`applications.common.length_pools`), so a resumed run's place is a count of clips.

- Speed perturbation (`speed_perturbation`) lists each training clip once more per factor;
  the copy is resampled as it is read, never stored.
- Connected digits (`connected_digits`) lists `connected_examples` utterances, each a seeded
  draw of 1..n recordings joined by 50-250 ms pauses, built as it is read. Utterance k is
  the same in every pass (as a stored set would be), so a resumed run sees what the
  uninterrupted one did.
- A clip that does not decode (a broken WAV, a FLAC file) is a bad example: skipped, named,
  counted (`applications.common.bad_examples`, reasons from `tfformer.wav.problem`).
- Training clips longer than `max_seconds` are left out, and logged.
"""

import dataclasses

import tensorflow as tf

from applications.common import bad_examples, example_stream, length_pools, record_blocks
from applications.common.text_files import DataError
from applications.speech_recognition import clips
from applications.speech_recognition.clips import DIGIT_WORDS, normalize_transcript  # noqa: F401
from applications.speech_recognition.features import FrontEnd, decode_wav, resample
from tfformer import wav

POOL_BATCHES = 16  # batches sorted by length together (`length_pools`)
OUTPUT_UNITS = ("characters", "words")


# ---- transcripts and their symbols ---------------------------------------------------------

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


def training_vocabulary(transcripts, config):
    """The symbols of what training streams: the listed transcripts' own and, where connected
    utterances join words (characters, `connected_digits` > 1), the space between them, which
    single-word recordings (FSDD) never hold."""
    symbols = set(build_vocabulary(transcripts, config.output_units))
    if config.connected_digits > 1 and config.output_units == "characters":
        symbols.add(" ")
    return sorted(symbols)


def encode_transcripts(transcripts, vocabulary, units="characters"):
    """Symbol ids; symbols outside the vocabulary are dropped."""
    index = {symbol: i for i, symbol in enumerate(vocabulary)}
    return [[index[s] for s in transcript_symbols(text, units) if s in index]
            for text in transcripts]


def _label_encoder(vocabulary, units):
    """transcript string -> int32 symbol ids (unknown symbols dropped), in the graph."""
    table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        tf.constant(list(vocabulary), tf.string), tf.range(len(vocabulary), dtype=tf.int32)),
        default_value=-1)
    transcript_symbols("", units)  # checks `units`

    def encode(transcript):
        symbols = (tf.strings.split(transcript) if units == "words"
                   else tf.strings.unicode_split(transcript, "UTF-8"))
        ids = table.lookup(symbols)
        return tf.boolean_mask(ids, ids >= 0)

    return encode


# ---- what a split streams: its clips, perturbed copies, or connected utterances ----------

@dataclasses.dataclass
class Source:
    """What one split streams: `records` (dicts with an int64 "id" and a "transcript"),
    `count` of them a pass, and how a record becomes a waveform (`waveform(record)`).
    `records` are `listed`, each made into `copies` (`record_blocks.Copies`) as it is
    read."""

    split: clips.ClipSplit
    listed: tf.data.Dataset
    count: int
    waveform: object
    describe: object  # record -> a string naming it for the log
    copies: record_blocks.Copies = example_stream.NO_COPIES

    @property
    def records(self):
        return self.copies.expanded(self.listed)

    @property
    def can_fail(self):
        """Whether reading a record can fail: it reads a file or decodes bytes."""
        kinds = {self.split.column[0]} if self.split.column else set(
            self.split.records.element_spec)
        return bool({"path", "encoded"} & kinds)


def _read(record, sample_rate):
    """One listed clip's record -> float32 waveform at `sample_rate`."""
    if "path" in record:
        return decode_wav(tf.io.read_file(record["path"]), sample_rate)
    if "encoded" in record:
        return decode_wav(record["encoded"], sample_rate)
    return record["waveform"]


def _speeds(config, training):
    return (1.0, *config.speed_perturbation) if training else (1.0,)


def _at_speed(waveform, speed, sample_rate):
    """Played `speed` times faster (shorter and higher, as a tape: Ko et al. 2015)."""
    return tf.cond(tf.equal(speed, 1.0), lambda: waveform,
                   lambda: resample(waveform, sample_rate, sample_rate / speed))


def _clip_name(split):
    def describe(record):
        if "path" in record:
            return record["path"]
        return tf.strings.join([f"{split.name} clip ", tf.strings.as_string(record["id"])])
    return describe


def source(split, config, training):
    """The records a split streams (see the module docstring)."""
    speeds = tf.constant(_speeds(config, training), tf.float32)
    copies = int(speeds.shape[0])
    rate = config.sample_rate
    if config.connected_digits > 0 and split.count:
        return _connected(split, config, training, speeds)
    if copies == 1:
        return Source(split, split.records, split.count, lambda r: _read(r, rate),
                      _clip_name(split))

    def at_speed(columns, k):
        return {**columns, "id": columns["id"] * copies + k, "speed": tf.gather(speeds, k)}

    def describe(record):
        return tf.strings.join([_clip_name(split)(record), " at speed ",
                                tf.strings.as_string(record["speed"], shortest=True)])

    return Source(split, split.records, split.count * copies,
                  lambda r: _at_speed(_read(r, rate), r["speed"], rate), describe,
                  record_blocks.Copies(copies, at_speed))


def _connected(split, config, training, speeds):
    """`connected_examples` utterances (training) or as many as the split has clips (val,
    test), each of 1..`connected_digits` of the split's recordings at any of `speeds`, joined
    by 50-250 ms pauses: drawn from the utterance's index and the seed, read as needed."""
    if not split.column:
        raise DataError("connected_digits joins recordings listed from a folder, a tarball or "
                        "a manifest, not prepared shards")
    kind, listed = split.column
    values = (tf.ragged.stack([tf.constant(w, tf.float32) for w in listed])
              if kind == "waveform" else tf.constant(list(listed), tf.string))
    transcripts = tf.constant(list(split.transcripts), tf.string)
    copies, rate, most = int(speeds.shape[0]), config.sample_rate, config.connected_digits
    pool = split.count * copies
    offset = {"train": 10, "val": 11, "test": 12}.get(split.name, 13)
    count = config.connected_examples if training else split.count
    seed = config.seed + offset

    def draw(index):
        key = tf.stack([tf.constant(seed, tf.int64), index])
        words = tf.random.stateless_uniform([], key, 1, most + 1, tf.int32)
        # Every record holds `most` picks and gaps, of which the first `words` are used: a
        # pass shuffles its records in batches, so they must all have one shape.
        picks = tf.random.stateless_uniform([most], key + [0, 1 << 40], 0, pool, tf.int64)
        gaps = tf.random.stateless_uniform([most], key + [0, 2 << 40], int(0.05 * rate),
                                           int(0.25 * rate), tf.int32)
        gaps = tf.concat([[0], gaps[1:]], 0)
        return {"id": index, "picks": picks, "gaps": gaps, "words": words,
                "transcript": tf.strings.reduce_join(
                    tf.gather(transcripts, picks[:words] // copies), separator=" ")}

    def used(record):
        return record["picks"][:record["words"]], record["gaps"][:record["words"]]

    def piece(pick, gap):
        clip = pick // copies
        record = ({kind: values[clip]} if kind != "waveform" else {"waveform": values[clip]})
        wave = _at_speed(_read(record, rate), tf.gather(speeds, pick % copies), rate)
        return tf.concat([tf.zeros([gap], tf.float32), wave], 0)

    def waveform(record):
        pieces = tf.map_fn(lambda args: piece(*args), used(record),
                           fn_output_signature=tf.RaggedTensorSpec([None], tf.float32, 0))
        return pieces.flat_values if isinstance(pieces, tf.RaggedTensor) else tf.reshape(
            pieces, [-1])

    def describe(record):
        return tf.strings.join([
            f"{split.name} connected utterance ", tf.strings.as_string(record["id"]),
            " of clips ", tf.strings.reduce_join(tf.strings.as_string(
                used(record)[0] // copies), separator=",")])

    return Source(split, tf.data.Dataset.range(count).map(draw), count, waveform, describe)


# ---- decoding, features and labels ----------------------------------------------------------

def _problem(record):
    if "path" in record:
        return wav.problem(tf.io.read_file(record["path"]))
    if "encoded" in record:
        return wav.problem(record["encoded"])
    return tf.constant("")


def waveforms(src, records, config, total, log_path=None):
    """records -> {"waveform", "transcript", "id", "name"} of the clips that decode; bad ones
    skipped and named, more than `max_bad_share` an error."""
    def decoded(record):
        return {"waveform": src.waveform(record), "transcript": record["transcript"],
                "id": record["id"], "name": src.describe(record)}

    def placeholder(record):
        return {"waveform": tf.zeros([0], tf.float32), "transcript": record["transcript"],
                "id": record["id"], "name": src.describe(record)}

    def reason(record):
        found = _problem(record) if "picks" not in record else tf.constant("")
        return tf.where(tf.equal(found, ""), "the audio does not decode", found)

    if not src.can_fail:  # waveforms in memory: no try/except per clip
        return records.map(decoded, num_parallel_calls=tf.data.AUTOTUNE)
    flagged = bad_examples.decode_or_flag(records, decoded, placeholder, reason, src.describe)
    return bad_examples.skip_bad(flagged, total, config.max_bad_share,
                                 f"the {src.split.name} clips", log_path)


def _features(config, vocabulary):
    front_end, encode = FrontEnd(config), _label_encoder(vocabulary, config.output_units)

    def features(example):
        frames, count = front_end.one(example["waveform"])
        labels = encode(example["transcript"])
        return {"features": frames, "feature_lengths": count, "labels": labels,
                "label_lengths": tf.size(labels)}

    return features


def _as_inputs(example):
    return ({"features": example["features"], "feature_lengths": example["feature_lengths"]},
            {"labels": example["labels"], "label_lengths": example["label_lengths"]})


def frame_boundaries(lengths, config):
    """Bucket boundaries in frames: the quartiles of `lengths` (samples, a sample of clips)."""
    frame_step = FrontEnd(config).frame_step
    frames = sorted(1 + int(n) // frame_step for n in lengths) or [1]
    return sorted({frames[int(len(frames) * q)] for q in (0.25, 0.5, 0.75)} - {0})


def training_start(split, config, consumed, worker=(0, 1), log_path=None):
    """(stream position, pool index, batches to skip) of a run resumed after `consumed`
    training clips of this worker's share; clips the log names (bad, too long) counted."""
    pool_index, before, skip = length_pools.resume_point(consumed, config.batch_size,
                                                         POOL_BATCHES)
    split, _ = split.share(*worker)
    src = source(split, config, training=True)
    left_out = bad_examples.bad_ids(log_path) if log_path else set()
    start = example_stream.position_after(before, src.listed, src.count, config.seed,
                                          left_out, split.shuffle_buffer(config), src.copies)
    return start, pool_index, skip


def training_batches(split, vocabulary, config, start=(0, 0, 0), worker=(0, 1),
                     log_path=None, offloaded=False):
    """The endless training stream from `start` (`training_start`): ({"features" (B, F, M),
    "feature_lengths" (B,)}, {"labels" (B, L), "label_lengths" (B,)}), B the global batch
    size. Each pool of `POOL_BATCHES` batches is sorted by length, so a batch holds clips
    of like length. `offloaded`: for tf.data service workers, which split it
    (`data_service`)."""
    position, first_pool, skip_batches = start
    split, _ = split.share(*worker)
    src = source(split, config, training=True)
    if src.count == 0:
        raise DataError("the training split is empty")
    stream = example_stream.training_stream(src.listed, src.count, config.seed, position,
                                            split.shuffle_buffer(config), offloaded, src.copies)
    decoded = waveforms(src, stream, config, src.count, log_path)
    limit = int(config.max_seconds * config.sample_rate)
    kept = bad_examples.leave_out(
        decoded, lambda e: tf.size(e["waveform"]) <= limit, src.count,
        lambda e: (e["id"], e["name"], tf.strings.format(
            "{} s long, more than max_seconds", tf.size(e["waveform"]) // config.sample_rate)),
        log_path)
    examples = kept.map(_features(config, vocabulary), num_parallel_calls=tf.data.AUTOTUNE)
    def frames(pool):  # a pool is sorted by length: each batch pads the least it can
        return pool["feature_lengths"]

    def padded(batch):
        return _as_inputs({**batch, "features": batch["features"].to_tensor(),
                           "labels": batch["labels"].to_tensor()})

    dataset = length_pools.pooled_batches(examples, frames, config.batch_size, POOL_BATCHES,
                                          config.seed, first_pool, skip_batches)
    dataset = dataset.map(padded, num_parallel_calls=tf.data.AUTOTUNE)
    if worker[1] > 1:
        dataset = example_stream.without_auto_sharding(dataset)
    return dataset.prefetch(tf.data.AUTOTUNE)


def batches(split, vocabulary, config, boundaries):
    """A split once (validation), bucketed by length; under several workers tf.distribute
    shards it by example."""
    src = source(split, config, training=False)
    if src.count == 0:
        raise DataError(f"no audio clips in the {split.name} split")
    examples = waveforms(src, src.records, config, src.count).map(
        _features(config, vocabulary), num_parallel_calls=tf.data.AUTOTUNE)
    dataset = examples.map(_as_inputs).bucket_by_sequence_length(
        lambda x, y: x["feature_lengths"], boundaries or [1],
        [config.batch_size] * (len(boundaries or [1]) + 1),
        padded_shapes=({"features": [None, config.num_mel_bins], "feature_lengths": []},
                       {"labels": [None], "label_lengths": []}))
    return example_stream.for_evaluation(dataset.prefetch(tf.data.AUTOTUNE))


def sampled_waveforms(split, config, limit, training=True):
    """Decoded waveforms of at most `limit` of a split's streamed records, evenly spread
    (bad ones left out silently: the stream names them): the bounded sample that the global
    normalisation and the length buckets come from. A dataset, read as it is used."""
    src = source(split, config, training)
    chosen, _ = record_blocks.spread_sample(src.records, src.count, limit,
                                            shuffled=bool(split.files))

    def empty(record):
        return tf.zeros([0], tf.float32)

    def unnamed(record):
        return tf.constant("")

    flagged = bad_examples.decode_or_flag(chosen, src.waveform, empty, unnamed, src.describe)
    return flagged.filter(lambda wave, ok, *_: ok).map(lambda wave, *_: wave)


def normalization_features(split, config):
    """(1, F, M) log-mel features of the normalisation sample, clip by clip (no padding
    enters the statistics)."""
    front_end = FrontEnd(config)
    return sampled_waveforms(split, config, config.normalization_sample).map(
        lambda wave: front_end.one(wave)[0][None], num_parallel_calls=tf.data.AUTOTUNE)


def read_split(split, config):
    """(waveforms [float32 numpy], transcripts) of a whole split, as evaluation streams it
    (connected utterances built, no perturbation); bad clips named and left out."""
    src = source(split, config, training=False)
    waves, texts = [], []
    if src.count:
        for example in waveforms(src, src.records, config, src.count).as_numpy_iterator():
            waves.append(example["waveform"])
            texts.append(example["transcript"].decode("utf-8"))
    return waves, texts


def load_speech(directory, config):
    """{"train", "val", "test": (waveforms, transcripts)}, read whole as evaluation reads a
    split (small data sets, benchmarks, tests)."""
    with bad_examples.bad_data_errors():
        return {name: read_split(split, config)
                for name, split in clips.list_clips(directory, config).items()}


def sample_lengths(split, config, limit=2000):
    """Sample counts of at most `limit` training clips, evenly spread."""
    return [len(wave) for wave in
            sampled_waveforms(split, config, limit).as_numpy_iterator()]


def as_split(name, waveforms_, transcripts):
    """A ClipSplit of waveforms in memory (float32 at the model's rate)."""
    return clips.in_memory(name, transcripts, waveform=list(waveforms_))

