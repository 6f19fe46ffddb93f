"""Training input offloaded to tf.data service workers: a dispatcher and workers started in
this process on 127.0.0.1, as `tfformer data-service` starts them on other machines."""

import dataclasses
import socket

import numpy as np
import pytest
import tensorflow as tf

from applications.cli import main
from applications.common import data_service, example_stream
from applications.common.config import ConfigError
from applications.translation import data
from tests.applications.translation.test_streaming import CONFIG, _corpus, _vocabularies


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _service(workers):
    """A dispatcher and `workers` workers; (dispatcher address, dispatcher, workers)."""
    ports = [_free_port() for _ in range(workers)]
    dispatcher = data_service.dispatcher(_free_port(), [f"127.0.0.1:{p}" for p in ports])
    started = [data_service.worker(dispatcher.target, port, f"127.0.0.1:{port}")
               for port in ports]
    return dispatcher.target, dispatcher, started


@pytest.fixture(scope="module")
def one_worker():
    address, dispatcher, workers = _service(1)
    yield address, workers[0]
    workers[0].stop()
    dispatcher.stop()


def test_a_dispatcher_address_is_checked_before_anything_starts():
    assert data_service.check_address("data-host:5050") == "grpc://data-host:5050"
    assert data_service.check_address("grpc://10.0.0.7:5050") == "grpc://10.0.0.7:5050"
    for bad in ("data-host", "http://data-host:5050", "grpc://data-host:99999", ""):
        with pytest.raises(ConfigError, match="is not a dispatcher address; give "
                           "grpc://HOST:PORT"):
            data_service.check_address(bad)


def test_the_dispatcher_command_needs_its_workers(capsys):
    with pytest.raises(SystemExit) as exit_status:
        main(["data-service", "dispatcher", "--port", str(_free_port())])
    assert exit_status.value.code == 2
    assert "needs its workers' addresses: --workers" in capsys.readouterr().err


def test_one_worker_serves_the_stream_the_trainer_would_make_also_when_resumed(
        tmp_path, one_worker):
    """Tokenized by tf-text on the worker, pooled by length and batched: bit for bit the
    local stream, from the start and from a resumed run's place (mid-pass, mid-pool)."""
    address, worker = one_worker
    splits = _corpus(tmp_path)
    source, target = _vocabularies(splits)
    log = str(tmp_path / "log.tsv")
    consumed = 3 * 10 * CONFIG.batch_size
    for start in [(0, 0, 0), data.training_start(splits["train"], CONFIG, consumed,
                                                 log_path=log)]:
        local = data.training_batches(splits["train"], source, target, CONFIG, start,
                                      log_path=log)
        served = data_service.offloaded(data.training_batches(
            splits["train"], source, target, CONFIG, start, log_path=log, offloaded=True),
            address)
        for (inputs, labels), (local_inputs, local_labels) in zip(
                served.take(20).as_numpy_iterator(), local.take(20).as_numpy_iterator()):
            np.testing.assert_array_equal(inputs["source_ids"], local_inputs["source_ids"])
            np.testing.assert_array_equal(inputs["target_ids"], local_inputs["target_ids"])
            np.testing.assert_array_equal(labels, local_labels)
    assert worker._num_tasks() >= 2  # noqa: SLF001 (the served streams ran there)


def test_two_workers_split_every_pass_between_them():
    """Each worker keeps every other record of the stream: the first pass's worth of
    batches, read from both in turn, holds every record once, and so does each pass."""
    address, dispatcher, workers = _service(2)
    try:
        records = tf.data.Dataset.range(100).map(lambda i: {"id": i})

        def ids(offloaded):
            return example_stream.training_stream(
                records, 100, seed=1, start=0, offloaded=offloaded).map(
                lambda record: record["id"]).batch(10)

        served = [list(batch) for batch in data_service.offloaded(
            ids(True), address).take(40).as_numpy_iterator()]
        for first in range(0, 40, 10):  # 10 batches, 5 from each worker: one pass
            seen = [i for batch in served[first:first + 10] for i in batch]
            assert sorted(seen) == list(range(100))
        local = [list(batch) for batch in ids(False).take(10).as_numpy_iterator()]
        whole = [i for batch in local for i in batch]
        one_worker = [i for batch in served[:10:2] for i in batch]
        assert one_worker in (whole[0::2], whole[1::2])  # its share, in the stream's order
    finally:
        for worker in workers:
            worker.stop()
        dispatcher.stop()


def test_translation_trains_through_the_service(tmp_path, one_worker, capsys):
    from applications.translation.config import PRESETS, TranslationConfig
    from applications.translation.train import train

    address, worker = one_worker
    tasks = worker._num_tasks()  # noqa: SLF001
    config = dataclasses.replace(
        TranslationConfig(**PRESETS["tiny"]), builtin_examples=300, vocabulary_size=80,
        num_layers=1, d_model=32, num_heads=2, intermediate_dim=64, epochs=1,
        steps_per_epoch=4, batch_size=16, beam_size=1)
    result = train(config, workdir=str(tmp_path / "run"), export_dir=str(tmp_path / "export"),
                   verbose=0, examples=0, data_service=address.split("://")[1])
    assert f"tf.data service workers of {address}" in capsys.readouterr().out
    assert worker._num_tasks() > tasks  # noqa: SLF001
    assert np.isfinite(result["history"]["loss"][0])
    assert result["export_path"]
