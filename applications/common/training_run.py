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
from applications.common.precision import check_mixed_precision
from applications.common.resume import backup_dir, check_backup, check_resume
from applications.common.run_lock import run_lock
from applications.common.strategy import is_chief, make_strategy, task


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
    `workdir` is resumed (see `check_resume`)."""
    strategy = make_strategy(strategy) if isinstance(strategy, str) else strategy
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ConfigError(f"the global batch_size={config.batch_size} does not split evenly "
                          f"over {replicas} replicas; use a multiple of {replicas}")
    check_mixed_precision(options.get("mixed_precision", "none"), strategy)
    backup = backup_dir(workdir, strategy)
    check_resume(workdir, backup, config, resume)
    if is_chief(strategy):
        check_writable(workdir, "--workdir")
        check_writable(export_dir, "--export-dir")
    task_type, index = task(strategy)
    with run_lock(workdir, f"{task_type}_{index}"):
        check_backup(backup)  # under the lock: it may replace a damaged generation
        with writable_dir(workdir, strategy) as run_dir, \
                writable_dir(export_dir, strategy) as export_base:
            result = body(config, data_dir, run_dir, export_base, strategy, backup_dir=backup,
                          **options)
        # Only now, with the export written: had it failed, the same command would resume
        # the finished training from this backup and export again.
        shutil.rmtree(backup, ignore_errors=True)
    return result
