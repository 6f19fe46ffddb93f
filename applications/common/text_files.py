"""Finding data files on disk and reading text corpora, with errors that name the file and line."""

import gzip
import os
import zlib

# What reading a file, gzipped or not, raises when it is missing, unreadable, cut short
# (EOFError) or corrupt inside (zlib.error, gzip.BadGzipFile: an OSError).
READ_ERRORS = (OSError, EOFError, zlib.error)


class DataError(ValueError):
    """A data file is missing, unreadable or malformed; the message names it."""


def find_file(directory, stem, suffixes=("", ".gz")):
    """The first existing `directory/stem<suffix>`, or None."""
    for suffix in suffixes:
        path = os.path.join(directory, stem + suffix)
        if os.path.isfile(path):
            return path
    return None


def find_tfds_directory(directory):
    """The first folder under `directory` holding a prepared TFDS dataset, or None."""
    for root, _, files in os.walk(directory):
        if "dataset_info.json" in files:
            return root
    return None


def read_lines(path):
    """Lines of a UTF-8 text file (gzipped if it ends in .gz), newline stripped."""
    opener = gzip.open if path.endswith(".gz") else open
    lines = []
    try:
        with opener(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    lines.append(raw.decode("utf-8").rstrip("\r\n"))
                except UnicodeDecodeError as error:
                    raise DataError(f"{path}, line {number}: not valid UTF-8 ({error.reason})") from None
    except READ_ERRORS as error:
        raise DataError(f"cannot read {path}: {_reason(error)}") from None
    return lines


def _reason(error):
    if isinstance(error, EOFError):
        return f"it ends early, cut short ({error})"
    if isinstance(error, zlib.error):
        return f"its compressed data is corrupt ({error})"
    return str(error)


def read_error(path, error):
    """A DataError naming `path` for one of READ_ERRORS."""
    return DataError(f"cannot read {path}: {_reason(error)}")


def write_lines(path, lines):
    """Writes one UTF-8 line per item, creating the folder."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(line + "\n" for line in lines)
