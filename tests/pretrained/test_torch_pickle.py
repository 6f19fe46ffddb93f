"""`pytorch_model.bin` read without PyTorch: the tensors torch itself saved (a committed
fixture, `tests/fixtures/pretrained/make_torch_state_dict.py`) come back exactly, and a
pickle that would run a command is refused by name with nothing run."""

import io
import os
import pathlib
import pickle
import zipfile

import numpy as np
import pytest

from tfformer.pretrained import UnsafeCheckpointError, read_torch_state_dict

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "pretrained"


def test_every_tensor_torch_saved_comes_back_exactly():
    weights = read_torch_state_dict(str(FIXTURES / "state_dict.bin"))
    with np.load(FIXTURES / "state_dict.npz") as expected:
        assert list(weights) == list(expected.files)  # the state dict's order
        for name in expected.files:
            got = weights[name]
            want = expected[name]
            assert got.shape == want.shape, name
            if name == "bfloat16":
                assert str(got.dtype) == "bfloat16"
                got = got.astype(np.float32)
            else:
                assert got.dtype == want.dtype, name
            np.testing.assert_array_equal(got, want, err_msg=name)
    np.testing.assert_array_equal(weights["shared.transposed"], weights["shared.whole"].T)
    assert weights["shared.transposed"].flags.owndata  # copies, not views into the file


def _archive(payload, storages=()):
    """A zip laid out as torch's: `archive/data.pkl` and `archive/data/<key>`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        for key, raw in storages:
            archive.writestr(f"archive/data/{key}", raw)
    buffer.seek(0)
    return buffer


def test_a_pickle_that_would_run_a_command_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    payloads = {
        "os.system": pickle.dumps(Exploit(), protocol=2),
        "builtins.eval": pickle.dumps(_Reduce(eval, (f"open({str(marker)!r}, 'w')",)),
                                      protocol=2),
        # A state dict whose tensor hides the call inside: refused all the same.
        "nested": pickle.dumps({"weight": Exploit()}, protocol=2),
    }
    for label, payload in payloads.items():
        with pytest.raises(UnsafeCheckpointError,
                           match=r"asks for (posix|os|builtins|__builtin__)\.\w+"):
            read_torch_state_dict(_archive(payload))
        assert not marker.exists(), label


class _Reduce:
    def __init__(self, function, arguments):
        self.function, self.arguments = function, arguments

    def __reduce__(self):
        return self.function, self.arguments


def _tensor_pickle(offset, size, stride, numel=4):
    """A pickle as torch writes one tensor, built from the opcodes, without torch."""
    def string(text):
        return b"X" + len(text).to_bytes(4, "little") + text.encode()

    def tuple_of_ints(values):
        return b"(" + b"".join(b"J" + int(v).to_bytes(4, "little", signed=True)
                               for v in values) + b"t"

    persistent_id = (b"(" + string("storage") + b"ctorch\nFloatStorage\n" + string("0")
                     + string("cpu") + b"J" + numel.to_bytes(4, "little") + b"tQ")
    return (b"\x80\x02}" + string("w") + b"ctorch._utils\n_rebuild_tensor_v2\n("
            + persistent_id + b"J" + offset.to_bytes(4, "little") + tuple_of_ints(size)
            + tuple_of_ints(stride) + b"\x89ccollections\nOrderedDict\n)R" + b"tR" + b"s.")


def test_a_hand_made_tensor_pickle_reads_and_one_reading_past_its_storage_is_refused():
    storage = [("0", np.arange(4, dtype=np.float32).tobytes())]
    read = read_torch_state_dict(_archive(_tensor_pickle(1, (3,), (1,)), storage))
    np.testing.assert_array_equal(read["w"], [1.0, 2.0, 3.0])
    with pytest.raises(pickle.UnpicklingError, match="reads past its storage of 4 elements"):
        read_torch_state_dict(_archive(_tensor_pickle(2, (3,), (1,)), storage))
    with pytest.raises(pickle.UnpicklingError, match="holds 16 bytes, less than 8 elements"):
        read_torch_state_dict(_archive(_tensor_pickle(0, (2,), (1,), numel=8), storage))
    with pytest.raises(pickle.UnpicklingError, match="archive/data/0 is missing"):
        read_torch_state_dict(_archive(_tensor_pickle(0, (2,), (1,))))


def test_files_that_are_not_torch_archives_are_named():
    with pytest.raises(pickle.UnpicklingError, match="not a zip archive: PyTorch's legacy"):
        read_torch_state_dict(io.BytesIO(b"\x80\x02" + b"legacy torch.save bytes"))
    with pytest.raises(pickle.UnpicklingError, match="holds 0"):
        read_torch_state_dict(_archive_without_pickle())
    with pytest.raises(pickle.UnpicklingError, match="other than a state dict"):
        read_torch_state_dict(_archive(pickle.dumps([1, 2], protocol=2)))


def _archive_without_pickle():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/version", "3")
    buffer.seek(0)
    return buffer
