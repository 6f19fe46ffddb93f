"""One training run: its strategy, directories, lock and resume checks, around the body
an application gives (build, fit, evaluate, export).

Multi-worker rules: every worker trains, restores and exports (saving may
run collective ops); only the chief's TensorBoard logs, checkpoints and
export are kept, the others write to temporary directories that are
deleted. Each worker keeps its own `BackupAndRestore` backup under
`backup/<task>_<index>`, so every worker can resume.
"""

import contextlib
import os
import shutil
import tempfile

from applications.common.config import ConfigError
from applications.common.data_service import check_address
from applications.common.precision import check_mixed_precision
from applications.common.resume import backup_dir, check_resume, resume_epoch
from applications.common.run_lock import run_lock
from applications.common.run_options import ExportFailed, TrainingInterrupted
from applications.common.strategy import is_chief, is_multi_worker, make_strategy, task


@contextlib.contextmanager
def writable_dir(path, strategy):
    """`path` on the chief; a temporary directory, deleted afterwards, on other workers."""
    if is_chief(strategy):
        yield path
        return
    temporary = tempfile.mkdtemp(prefix="tfformer_worker_")
    try:
        yield os.path.join(temporary, os.path.basename(os.path.normpath(path)) or "out")
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def check_writable(path, option):
    """Fails before any training if `path` could not be created or written to; creates
    nothing."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    problem = (f"{existing} is not a directory" if not os.path.isdir(existing) else
               f"{existing} is not writable" if not os.access(existing, os.W_OK | os.X_OK)
               else None)
    if problem:
        raise ConfigError(f"{option} {path} can't be written: {problem}; choose another "
                          f"{option}")


def run_training(body, config, data_dir, workdir, export_dir, strategy, resume="auto",
                 **options):
    """Calls an application's `body(config, data_dir, workdir, export_dir, strategy,
    backup_dir=..., **options)` with the strategy made from its name and the multi-worker
    rules applied: only the chief keeps logs, checkpoints and the export. A backup in
    `workdir` is resumed (see `check_resume`). Ctrl-C raises `TrainingInterrupted`, whose
    message says where training stood and what the same command will do."""
    if options.get("data_service"):
        options["data_service"] = check_address(options["data_service"])
        print(f"training input: run by the tf.data service workers of "
              f"{options['data_service']}, each pass split between them")
    strategy = make_strategy(strategy) if isinstance(strategy, str) else strategy
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ConfigError(f"the global batch_size={config.batch_size} does not split evenly "
                          f"over {replicas} replicas; use a multiple of {replicas}")
    check_mixed_precision(options.get("mixed_precision", "none"), strategy)
    if resume == "fresh" and is_multi_worker(strategy):
        raise ConfigError("--fresh is not for multi-worker runs (every worker would move the "
                          "shared directory); set the old run aside first or choose another "
                          "--workdir")
    backup = backup_dir(workdir, strategy)
    if is_chief(strategy):
        check_writable(workdir, "--workdir")
        check_writable(export_dir, "--export-dir")
    task_type, index = task(strategy)
    with run_lock(workdir, f"{task_type}_{index}"):
        check_resume(workdir, backup, config, resume)
        try:
            with writable_dir(workdir, strategy) as run_dir, \
                    writable_dir(export_dir, strategy) as export_base:
                result = body(config, data_dir, run_dir, export_base, strategy,
                              backup_dir=backup, **options)
        except KeyboardInterrupt as interrupt:
            raise TrainingInterrupted(_interrupted(interrupt, backup)) from None
        # Only now, with the export written: had it failed, the same command would resume
        # the finished training from this backup and export again.
        shutil.rmtree(backup, ignore_errors=True)
    return result


def export_trained(export, server, export_dir, backup_dir):
    """`export(server, export_dir)`, whose failure (an OSError) becomes `ExportFailed`,
    naming the directory and the backup that the same command will export from."""
    try:
        return export(server, export_dir)
    except OSError as error:
        raise ExportFailed(
            f"exporting to {export_dir} failed ({error}); the trained run is kept in "
            f"{backup_dir}: make room or fix the directory, then run the same command again "
            f"to export it") from error


def _interrupted(interrupt, backup):
    """What a user who pressed Ctrl-C needs to know: where training stood, and what the
    same command will do."""
    kept = resume_epoch(backup)
    where = (f"at epoch {interrupt.epoch}, step {interrupt.step}"
             if isinstance(interrupt, TrainingInterrupted) and interrupt.epoch else
             "before training started" if not kept else
             "outside training (loading data, evaluating or exporting)")
    if not kept:
        return f"interrupted {where}, before the first backup: the same command starts over"
    return (f"interrupted {where}: run the same command to resume from the backup in {backup} "
            f"(it holds epoch {kept})")
