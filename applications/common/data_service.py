"""The training input offloaded to tf.data service workers (`--data-service grpc://HOST:PORT`).

The trainer sends its training pipeline's graph to a dispatcher, and workers
on other machines run it: reading, decoding, feature extraction, augmentation
and tokenization leave the trainer's CPUs. The workers split each pass over
the data between them: the stream marks the point after which each worker
keeps every n-th record (`shard(SHARD_HINT, SHARD_HINT)`, replaced by
(workers, index) under the static `HINT` sharding policy), so each record is
decoded by one worker and reaches training once per pass. Static sharding
needs the dispatcher to know its workers: start it with their addresses
(`tfformer data-service dispatcher --workers ...`).

With one worker the trainer receives exactly the stream it would make itself,
in order, so a resumed run finds its place as it does locally. With several,
the workers' batches arrive in the order they are ready: every record still
comes once a pass, but a resumed run starts from the backup's position of the
single-worker order, so a few batches near the interruption may be seen
twice or not at all.

Bad examples are named on the worker's stderr and logged to the run's backup
directory by path: give the workers the same file system (as a multi-worker
run needs for its work directory).
"""

import re
import uuid

import tensorflow as tf

from applications.common.config import ConfigError

ADDRESS = re.compile(r"^(grpc://)?([A-Za-z0-9.\-_]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$")


def check_address(address):
    """`grpc://HOST:PORT` (the scheme may be left out) -> that address with the scheme;
    anything else is a ConfigError naming the expected form."""
    match = ADDRESS.match(address or "")
    if not match or not 0 < int(match.group(3)) < 65536:
        raise ConfigError(f"--data-service {address!r} is not a dispatcher address; give "
                          "grpc://HOST:PORT, e.g. grpc://data-dispatcher:5050")
    return f"grpc://{match.group(2)}:{match.group(3)}"


def shard_point(stream, offloaded):
    """`stream` marked, when `offloaded`, as the place where each tf.data service worker
    keeps its share: every n-th element, n the number of workers."""
    if not offloaded:
        return stream
    hint = tf.data.experimental.SHARD_HINT
    return stream.shard(hint, hint)


def offloaded(dataset, address):
    """`dataset` (which went through `shard_point`) produced by the tf.data service at
    `address` and read from it; `dataset` itself when `address` is None.

    The trainer reads the workers in turn, one batch from each (a coordinated read
    with a single consumer), so each worker's share is consumed at the same pace: the
    first k batches cover about the first k batches' worth of every pass, whichever
    worker is faster. The job is new on every call (a unique name), so a resumed run
    never joins the interrupted run's job at its own position."""
    if not address:
        return dataset
    return dataset.apply(tf.data.experimental.service.distribute(
        processing_mode=tf.data.experimental.service.ShardingPolicy.HINT,
        service=check_address(address), job_name=f"tfformer-{uuid.uuid4().hex}",
        consumer_index=0, num_consumers=1))


def dispatcher(port, workers, work_dir=None):
    """A started dispatcher on `port` for the worker addresses `workers` ("host:port"); with
    `work_dir` it keeps its state there and survives a restart."""
    config = tf.data.experimental.service.DispatcherConfig(
        port=port, worker_addresses=list(workers), work_dir=work_dir,
        fault_tolerant_mode=work_dir is not None)
    return tf.data.experimental.service.DispatchServer(config)


def worker(dispatcher_address, port, address):
    """A started worker on `port` that registers with `dispatcher_address` as `address`
    ("host:port", as the dispatcher lists it). The pipelines' tf-text ops are registered
    first: a translation stream tokenizes on the worker."""
    import tensorflow_text  # noqa: F401  (registers the SentencePiece ops the graph uses)

    config = tf.data.experimental.service.WorkerConfig(
        dispatcher_address=check_address(dispatcher_address).split("://", 1)[1],
        worker_address=address, port=port)
    return tf.data.experimental.service.WorkerServer(config)
