"""Compressed data that ends early or is corrupt inside gets an error naming the file, for
every loader that reads compressed files (text corpora, IDX images, FSDD archives)."""

import gzip
import io
import tarfile

import numpy as np
import pytest

from applications.common.text_files import DataError, read_lines
from applications.image_classification import data as image_data
from applications.image_classification.config import PRESETS as IMAGE_PRESETS
from applications.image_classification.config import ImageClassificationConfig
from applications.speech_recognition import data as speech_data
from applications.speech_recognition.config import PRESETS as SPEECH_PRESETS
from applications.speech_recognition.config import SpeechRecognitionConfig


def _damaged(contents, how):
    if how == "truncated":
        return contents[: len(contents) // 2]
    middle = len(contents) // 2  # corrupt the deflate stream, keep the header
    return contents[:middle] + bytes(b ^ 0xFF for b in contents[middle:middle + 64]) + (
        contents[middle + 64:])


@pytest.mark.parametrize("how", ["truncated", "corrupt"])
def test_a_damaged_gzipped_corpus_is_named(tmp_path, how):
    text = "".join(f"sentence number {i} with some words\n" for i in range(5000)).encode()
    path = tmp_path / "train.en.gz"
    path.write_bytes(_damaged(gzip.compress(text), how))
    with pytest.raises(DataError, match=rf"cannot read {path}: "):
        read_lines(str(path))


@pytest.mark.parametrize("how", ["truncated", "corrupt"])
def test_damaged_idx_images_are_named(tmp_path, how):
    images = np.random.default_rng(0).integers(0, 255, (200, 28, 28), np.uint8)
    header = bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big") for d in images.shape)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(
        _damaged(gzip.compress(header + images.tobytes()), how))
    labels = bytes([0, 0, 8, 1]) + (200).to_bytes(4, "big") + bytes(200)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    config = ImageClassificationConfig(**IMAGE_PRESETS["tiny"])
    with pytest.raises(DataError, match="cannot read .*train-images-idx3-ubyte.gz: "):
        image_data.list_images(str(tmp_path), config)


@pytest.mark.parametrize("how", ["truncated", "corrupt"])
def test_a_damaged_fsdd_archive_is_named(tmp_path, how):
    buffer = io.BytesIO()
    rng = np.random.default_rng(1)
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for index in range(40):
            noise = rng.integers(0, 255, 4000, np.uint8).tobytes()  # not compressible
            member = tarfile.TarInfo(f"recordings/{index % 10}_theo_{index}.wav")
            member.size = len(noise)
            archive.addfile(member, io.BytesIO(noise))
    path = tmp_path / "fsdd.tar.gz"
    path.write_bytes(_damaged(buffer.getvalue(), how))
    config = SpeechRecognitionConfig(**SPEECH_PRESETS["tiny"])
    with pytest.raises(DataError, match=rf"cannot read {path}: "):
        speech_data.load_speech(str(tmp_path), config)
