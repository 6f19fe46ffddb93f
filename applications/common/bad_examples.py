"""Bad examples met while streaming: skipped, counted, named, and too many of them an error.

A data set read hours into a run may hold a corrupt image, a broken WAV or an
undecodable line. Decoding one raises inside tf.data, which would end the run.
Instead each record is decoded in a one-element dataset whose error is
ignored, followed by a fallback flagged bad: an in-graph try/except. It is
written by hand because tf.data's own `ignore_errors` drops an element without
saying which or why, and a `py_function` would tie the pipeline to this
process (tf.data service workers run the graph alone).

Every skipped record is printed to stderr with its source and the reason, and
appended to a log file when one is given (a resumed run reads it back to find
its place in the stream: `example_stream.position_after`). More bad records
than `max_share` of the data set stops the stream with an error that
`bad_data_errors` turns into a `DataError`.
"""

import contextlib
import functools
import os
import re
import sys

import tensorflow as tf

from applications.common.text_files import DataError

TOO_MANY = "too many bad examples"
LOG_NAME = "bad_examples.tsv"


def first_success(record, functions):
    """A one-element dataset: what the first of `functions` that does not raise returns
    for `record` (the last one must not raise)."""
    *tries, last = functions
    datasets = [tf.data.Dataset.from_tensors(record).map(f).ignore_errors() for f in tries]
    datasets.append(tf.data.Dataset.from_tensors(record).map(last))
    return functools.reduce(lambda a, b: a.concatenate(b), datasets).take(1)


def decode_or_flag(records, decode, placeholder, reason, source):
    """records (dicts with an int64 "id") -> (example, ok, reason, source, id) per record,
    in order, decoded in parallel.

    `decode(record)` is the example (it may raise); when it does, the element is
    (`placeholder(record)`, False, `reason(record)`, ...), where `reason` may raise too
    (then "cannot be read"). `source(record)` names the record (a path) for the log."""
    def flagged(example, ok, why, record):
        return example, tf.constant(ok), why, source(record), record["id"]

    def good(record):
        return flagged(decode(record), True, tf.constant(""), record)

    def bad(record):
        return flagged(placeholder(record), False, reason(record), record)

    def unreadable(record):
        return flagged(placeholder(record), False, tf.constant("cannot be read"), record)

    return records.interleave(
        lambda record: first_success(record, [good, bad, unreadable]),
        cycle_length=max(4, os.cpu_count() or 1), num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True)


def skip_bad(flagged, total, max_share, what, log_path=None):
    """`decode_or_flag`'s elements -> the examples, the bad ones left out and reported.

    Stops with an error naming the last bad record once more than `max_share`
    of `total` (or of the elements seen, if more) are bad. `what` names the
    data ("the training data") in messages."""
    log_stream = f"file://{os.path.abspath(log_path)}" if log_path else None

    def count(state, element):
        example, ok, reason, source, record_id = element
        seen, bad = state[0] + 1, state[1] + tf.cast(tf.logical_not(ok), tf.int64)
        limit = tf.cast(tf.floor(max_share * tf.cast(tf.maximum(seen, total), tf.float64)),
                        tf.int64)
        if not ok and seen <= total:  # named once, in the stream's first pass
            tf.print(tf.strings.join([f"skipped a bad example of {what}: ", source, ": ",
                                      reason]), output_stream=sys.stderr)
            if log_stream:
                tf.print(tf.strings.join([tf.strings.as_string(record_id), source, reason],
                                         separator="\t"), output_stream=log_stream)
        message = tf.strings.join([
            f"{TOO_MANY} in {what}: ", tf.strings.as_string(bad), " of the first ",
            tf.strings.as_string(seen), f" of {total} are bad, more than max_bad_share="
            f"{max_share:g}; the last: ", source, ": ", reason])
        check = tf.debugging.Assert(bad <= limit, [message])
        with tf.control_dependencies([check]):
            return (seen, bad), (example, tf.identity(ok))

    zero = tf.constant(0, tf.int64)
    return (flagged.scan((zero, zero), count)
            .filter(lambda example, ok: ok)
            .map(lambda example, ok: example))


def leave_out(elements, keep, total, describe, log_path=None):
    """`elements` without those `keep(element)` rejects: examples that are not broken but
    that training does not take (a target too long). They are not printed and not counted
    as bad, but the first pass's are written to the log as bad ones are, so that a resumed
    run finds its place (`example_stream.position_after`). `describe(element)` is
    (id, source, reason)."""
    if not log_path:
        return elements.filter(keep)
    log_stream = f"file://{os.path.abspath(log_path)}"

    def count(seen, element):
        kept = keep(element)
        if not kept and seen < total:
            tf.print(tf.strings.join([tf.strings.as_string(describe(element)[0]),
                                      *describe(element)[1:]], separator="\t"),
                     output_stream=log_stream)
        return seen + 1, (element, kept)

    return (elements.scan(tf.constant(0, tf.int64), count)
            .filter(lambda element, kept: kept)
            .map(lambda element, kept: element))


def bad_ids(log_path):
    """The record ids a log written by `skip_bad` names (an empty set without one)."""
    try:
        with open(log_path, encoding="utf-8", errors="replace") as handle:
            return {int(line.split("\t", 1)[0]) for line in handle if line.strip()}
    except FileNotFoundError:
        return set()


@contextlib.contextmanager
def bad_data_errors():
    """Turns the stream's "too many bad examples" error into a `DataError` with its text."""
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        match = re.search(re.escape(TOO_MANY) + r".*", error.message)
        if not match:
            raise
        text = match.group(0).split("\n")[0].rstrip().rstrip("]")
        text = text.replace("\\'", "'")  # Assert prints its message as a quoted string
        raise DataError(f"{text}. Fix or remove the bad files, or allow more with "
                        f"--set max_bad_share=...") from None
