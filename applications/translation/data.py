"""Translation data, streamed: corpora on disk or built in (`corpus`), SentencePiece
tokenizers, and the tf.data pipelines that tokenize in the graph.

`training_batches` reads the training pairs pass after pass from any position
(`applications.common.example_stream`), checks and tokenizes them in parallel,
and batches pairs of like length: each pool of `POOL_BATCHES` batches is sorted
by length and cut into batches, served in a seeded order. Every batch holds
exactly `batch_size` pairs, so a resumed run's place is a count of pairs.
Lines that are not valid UTF-8 and TSV lines without one tab are bad examples:
skipped, named, counted (`applications.common.bad_examples`). Pairs whose target
is longer than `max_target_length` are left out (and logged, not printed).
"""

import io

import sentencepiece
import tensorflow as tf
import tensorflow_text as tf_text

from applications.common import bad_examples, example_stream, length_pools
from applications.common.sampling import evenly_spread
from applications.common.text_files import DataError
from applications.translation import corpus as corpora

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
POOL_BATCHES = 16  # batches sorted by length together: like lengths, yet random batches


def train_sentencepiece(sentences, vocabulary_size, model_type="unigram", seed=0):
    """Serialized SentencePiece model trained on `sentences` (pad 0, unk 1, bos 2, eos 3)."""
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=vocabulary_size,
        model_type=model_type,
        character_coverage=1.0,
        pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
        hard_vocab_limit=False,
        num_threads=2,
        minloglevel=2,
    )
    return model.getvalue()


def tokenizer_pairs(config):
    """How many pairs the tokenizer sample holds: each SentencePiece model learns from at
    most `config.tokenizer_sample` sentences, so one shared model takes half as many pairs
    (both sides of each)."""
    if config.shared_vocabulary:
        return max(1, config.tokenizer_sample // 2)
    return config.tokenizer_sample


def train_tokenizers(pairs, config):
    """(source_model, target_model) serialized SentencePiece protos; one shared model
    when `config.shared_vocabulary`. The pairs are sampled down to `tokenizer_pairs`
    (`evenly_spread`): SentencePiece's time and memory grow with its input."""
    pairs = evenly_spread(pairs, tokenizer_pairs(config))
    sources = [s for s, _ in pairs]
    targets = [t for _, t in pairs]
    size, kind = config.vocabulary_size, config.tokenizer_model_type
    if config.shared_vocabulary:
        model = train_sentencepiece(sources + targets, size, kind, config.seed)
        return model, model
    return (train_sentencepiece(sources, size, kind, config.seed),
            train_sentencepiece(targets, size, kind, config.seed))


def tokenizer(model_proto):
    """The in-graph tf-text tokenizer for a serialized SentencePiece model."""
    return tf_text.SentencepieceTokenizer(model=model_proto, out_type=tf.int32)


def vocabulary_size(model_proto):
    return int(tokenizer(model_proto).vocab_size())


def encode_source(tokens, max_length):
    """Ragged token ids (B, None) -> source ids: truncated, EOS appended."""
    tokens = tokens[:, : max_length - 1]
    eos = tf.fill([tokens.nrows(), 1], EOS_ID)
    return tf.concat([tokens, tf.RaggedTensor.from_tensor(eos)], axis=1)


# --- checking records ------------------------------------------------------------------

def _is_utf8(text):
    return tf.equal(tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace"),
                    text)


CHECK_BATCH = 1024  # records checked together: the checks are vectorized


def _flagged(split, records):
    """records -> (example, ok, reason, source, id): example a dict of "source" and
    "target" strings, "id" and "number"; ok False for a line that is not valid UTF-8 or a
    TSV line without exactly one tab. Checked without raising, so no try/except is
    needed (cf. `bad_examples.decode_or_flag`), a batch of records at a time."""
    def check(batch):
        if "line" in batch:
            fields = tf.strings.split(batch["line"], "\t")
            found = tf.cast(fields.row_lengths(), tf.int32)
            padded = fields.to_tensor("", shape=[None, 2])
            source, target = padded[:, 0], padded[:, 1]
            fields_ok = tf.equal(found, 2)
            fields_problem = tf.strings.join([
                "expected 'source<TAB>target', found ", tf.strings.as_string(found),
                " tab-separated fields"])
        else:
            source, target = batch["source"], batch["target"]
            fields_ok = tf.ones_like(source, tf.bool)
            fields_problem = tf.zeros_like(source)
        source_ok, target_ok = _is_utf8(source), _is_utf8(target)
        reason = tf.where(fields_ok, tf.where(source_ok, "the target is not valid UTF-8",
                                              "the source is not valid UTF-8"), fields_problem)
        ok = fields_ok & source_ok & target_ok
        name = tf.strings.join([split.path, ", line ", tf.strings.as_string(batch["number"])])
        example = {"source": source, "target": target, "id": batch["id"],
                   "number": batch["number"]}
        return example, ok, tf.where(ok, "", reason), name, batch["id"]

    return (records.batch(CHECK_BATCH)
            .map(check, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch())


def good_pairs(split, records, config, total, log_path=None):
    """records -> the examples of `_flagged` that are good; bad ones skipped, named on
    stderr, logged, and more than `config.max_bad_share` of them an error."""
    return bad_examples.skip_bad(_flagged(split, records), total, config.max_bad_share,
                                 f"the {split.name} pairs", log_path)


def sample_pairs(split, limit):
    """At most `limit` good (source, target) pairs of `split`, spread across it
    (`corpus.sampled`); bad ones are left out silently (the training stream names them)."""
    sample = corpora.sampled(split, limit)
    good = _flagged(sample, sample.records).filter(lambda example, ok, *_: ok)
    return _as_pairs(good.map(lambda example, *_: example))


def _as_pairs(examples):
    """[(source, target)] of a dataset of examples, read in large batches (a Python step
    per element would cost more than the tokenizer)."""
    pairs = []
    for batch in examples.batch(8192).as_numpy_iterator():
        pairs += [(s.decode("utf-8"), t.decode("utf-8"))
                  for s, t in zip(batch["source"], batch["target"])]
    return pairs


def read_pairs(split, config):
    """Every good (source, target) pair of a split, in order (bad ones named): for the
    evaluation splits, which are decoded whole."""
    return _as_pairs(good_pairs(split, split.records, config, split.count))


def load_corpus(directory, config):
    """{"train", "val", "test"} -> [(source, target)], read whole (small corpora, tests)."""
    with bad_examples.bad_data_errors():
        return {name: read_pairs(split, config)
                for name, split in corpora.list_corpus(directory, config).items()}


# --- tokenizing and batching ---------------------------------------------------------------

TOKENIZE_BATCH = 256


def _tokenized(examples, source_vocabulary, target_vocabulary):
    """examples -> {"source_ids" (n,), "target_ids" (start + target + end,), "id",
    "number"}, tokenized a batch at a time, in order."""
    def tokenize(batch):
        targets = target_vocabulary.tokenize(batch["target"])
        start = tf.RaggedTensor.from_tensor(
            tf.fill([targets.nrows(), 1], target_vocabulary.start_id))
        return {"source_ids": source_vocabulary.tokenize(batch["source"]),
                "target_ids": tf.concat([start, targets], axis=1),
                "id": batch["id"], "number": batch["number"]}

    return (examples.batch(TOKENIZE_BATCH).map(tokenize, num_parallel_calls=tf.data.AUTOTUNE,
                                               deterministic=True).unbatch())


def _short_enough(config):
    return lambda example: tf.shape(example["target_ids"])[0] - 1 <= config.max_target_length


def _bucket_widths(config):
    """Padded lengths: a few sizes, so that few shapes are traced."""
    longest = max(config.max_source_length, config.max_target_length + 1)
    boundaries = [b for b in (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256) if b < longest]
    return boundaries + [longest + 1]


def _split_target(source, target):
    # Teacher forcing: the decoder reads start + target, predicts target + end.
    return {"source_ids": source, "target_ids": target[:, :-1]}, target[:, 1:]


def _padded_pools(examples, config, pads, first_pool, skip_batches):
    """examples -> padded (source (B, W), target (B, W)) batches of exactly B pairs, of like
    padded width W (`length_pools`)."""
    widths = tf.constant(_bucket_widths(config), tf.int64) - 1

    def width_bucket(pool):
        lengths = tf.maximum(pool[0].row_lengths(), pool[1].row_lengths())
        return tf.searchsorted(widths, lengths, side="left")

    def padded(sources, targets):
        longest = tf.maximum(sources.bounding_shape(1), targets.bounding_shape(1))
        width = tf.reduce_min(tf.boolean_mask(widths, widths >= longest))
        shape = tf.stack([tf.cast(config.batch_size, tf.int64), width])
        return tuple(ids.to_tensor(pad, shape=shape) for ids, pad in zip((sources, targets),
                                                                          pads))

    pairs = examples.map(lambda e: (e["source_ids"], e["target_ids"]))
    batches = length_pools.pooled_batches(pairs, width_bucket, config.batch_size,
                                          POOL_BATCHES, config.seed, first_pool, skip_batches)
    return batches.map(padded, num_parallel_calls=tf.data.AUTOTUNE)


def training_start(split, config, consumed, worker=(0, 1), log_path=None):
    """Where a run resumed after `consumed` training pairs (of this worker's share) starts:
    (stream position of the pool it was in, that pool's index, batches of it to skip),
    with the records that `log_path` names (bad, or left out) accounted for."""
    pool_index, before, skip = length_pools.resume_point(consumed, config.batch_size,
                                                         POOL_BATCHES)
    split, _ = split.share(*worker)
    left_out = bad_examples.bad_ids(log_path) if log_path else set()
    start = example_stream.position_after(before, split.records, split.count, config.seed,
                                          left_out, split.shuffle_buffer(config))
    return start, pool_index, skip


def training_batches(split, source_vocabulary, target_vocabulary, config, start=(0, 0, 0),
                     worker=(0, 1), log_path=None, offloaded=False):
    """The endless training stream from `start` (`training_start`): ({"source_ids" (B, W),
    "target_ids" (B, W')}, labels (B, W')), B the global batch size, padded with the
    vocabularies' pad ids; `target_ids` is start + target, labels target + end. With
    `worker` (index, count) it reads only that worker's share and is marked as sharded.
    `offloaded`: for tf.data service workers, which split it (`data_service`)."""
    if split.count == 0:
        raise DataError("the training split is empty")
    position, first_pool, skip_batches = start
    split, _ = split.share(*worker)
    stream = example_stream.training_stream(split.records, split.count, config.seed, position,
                                            split.shuffle_buffer(config), offloaded)
    examples = good_pairs(split, stream, config, split.count, log_path)
    examples = bad_examples.leave_out(
        _tokenized(examples, source_vocabulary, target_vocabulary), _short_enough(config),
        split.count,
        lambda e: (e["id"], tf.strings.join([split.path, ", line ",
                                             tf.strings.as_string(e["number"])]),
                   tf.strings.format("a target of {} tokens, more than max_target_length",
                                     tf.shape(e["target_ids"])[0] - 1)),
        log_path)
    dataset = _padded_pools(examples, config,
                              (source_vocabulary.pad_id, target_vocabulary.pad_id),
                              first_pool, skip_batches)
    dataset = dataset.map(_split_target, num_parallel_calls=tf.data.AUTOTUNE)
    if worker[1] > 1:
        dataset = example_stream.without_auto_sharding(dataset)
    return dataset.prefetch(tf.data.AUTOTUNE)


def batches(split, source_vocabulary, target_vocabulary, config, name=None):
    """A split once, in batches of like length (validation): as `training_batches`'
    elements, the last batches smaller. Under several workers tf.distribute shards it by
    example."""
    if split.count == 0:
        raise DataError(f"the {name or split.name} split is empty")
    examples = _tokenized(good_pairs(split, split.records, config, split.count),
                          source_vocabulary, target_vocabulary).filter(_short_enough(config))
    boundaries = _bucket_widths(config)
    dataset = examples.map(lambda e: (e["source_ids"], e["target_ids"])).bucket_by_sequence_length(
        element_length_func=lambda s, t: tf.maximum(tf.shape(s)[0], tf.shape(t)[0]),
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[config.batch_size] * (len(boundaries) + 1),
        pad_to_bucket_boundary=True,
        padding_values=(source_vocabulary.pad_id, target_vocabulary.pad_id))
    dataset = dataset.map(_split_target, num_parallel_calls=tf.data.AUTOTUNE)
    return example_stream.for_evaluation(dataset.prefetch(tf.data.AUTOTUNE))


def long_share(pairs, target_vocabulary, config):
    """The share of `pairs` (a sample) whose target is longer than max_target_length."""
    if not pairs:
        return 0.0
    lengths = target_vocabulary.tokenize(tf.constant([t for _, t in pairs])).row_lengths()
    return float(tf.reduce_mean(tf.cast(lengths > config.max_target_length, tf.float32)))
