"""PyTorch's `pytorch_model.bin` read without PyTorch, and without running its pickle's code.

A `.bin` file (torch >= 1.6) is a zip archive: `<name>/data.pkl` pickles the state dict,
whose tensors point at storages kept as raw bytes in `<name>/data/<key>`. Unpickling can call
any importable function, so a file from the internet may run a command when read with
`pickle` or `torch.load(weights_only=False)`. Written by hand because no maintained library
reads these files without PyTorch: the unpickler here resolves only the few globals a tensor
state dict needs (tensor rebuilds, storage types, `OrderedDict`), each to a NumPy stand-in,
and refuses any other by name before anything is called.

>>> import io, pickle, zipfile
>>> class Evil:
...     def __reduce__(self):
...         import os
...         return (os.system, ("echo pwned",))
>>> archive = io.BytesIO()
>>> with zipfile.ZipFile(archive, "w") as zipped:
...     zipped.writestr("archive/data.pkl", pickle.dumps(Evil(), protocol=2))
>>> try:
...     read_torch_state_dict(archive)
... except UnsafeCheckpointError as error:
...     print(str(error).split(",")[0])
the checkpoint's pickle asks for posix.system
"""

import collections
import pickle
import zipfile

import ml_dtypes
import numpy as np


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A `.bin` pickle asks for a global that a tensor state dict does not need."""


# torch's storage classes, by the name its pickles give them, and their element types.
_STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    """What `torch.<Name>Storage` resolves to: the element type of the bytes it names."""

    def __init__(self, name):
        self.name, self.dtype = name, np.dtype(_STORAGE_DTYPES[name])


def _rebuild_tensor(storage, offset, size, stride, *unused):
    """torch._utils._rebuild_tensor_v2 (and _rebuild_tensor): a view into `storage`,
    copied, after checking that every element it reads lies inside the storage."""
    if not isinstance(storage, np.ndarray):
        raise pickle.UnpicklingError("a tensor that does not point at a storage")
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    offset = int(offset)
    if len(size) != len(stride) or min((*size, 0)) < 0 or min((*stride, 0)) < 0 or offset < 0:
        raise pickle.UnpicklingError(f"a tensor of size {size} and stride {stride} is malformed")
    if 0 in size:
        return np.zeros(size, storage.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage.size:
        raise pickle.UnpicklingError(
            f"a tensor of size {size}, stride {stride} at offset {offset} reads past its "
            f"storage of {storage.size} elements")
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=size, strides=[s * storage.itemsize for s in stride],
        writeable=False)
    return np.array(view)


def _rebuild_parameter(tensor, *unused):
    return tensor


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _StateDictUnpickler(pickle.Unpickler):
    def __init__(self, file, read_storage):
        super().__init__(file)
        self.read_storage = read_storage

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"the checkpoint's pickle asks for {module}.{name}, which a tensor state dict "
                "does not need: refused without calling it (only tensor and storage rebuilds "
                "and OrderedDict are read)") from None

    def persistent_load(self, pid):
        if (not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage"
                or not isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"an unknown persistent id {pid!r:.100}")
        _, storage_type, key, _location, numel = pid
        return self.read_storage(str(key), storage_type.dtype, int(numel))


def read_torch_state_dict(file):
    """{name: np.ndarray} from a `pytorch_model.bin` (a path or a binary file object).

    Raises `UnsafeCheckpointError` for a pickle that asks for anything but tensors, and
    `pickle.UnpicklingError` naming what is wrong for a damaged or foreign file."""
    try:
        archive = zipfile.ZipFile(file)
    except zipfile.BadZipFile:
        raise pickle.UnpicklingError(
            "not a zip archive: PyTorch's legacy format (torch < 1.6) and other files are not "
            "read; save it again with a newer torch, or as safetensors") from None
    with archive:
        names = archive.namelist()
        pickles = [name for name in names if name.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise pickle.UnpicklingError(f"a PyTorch archive holds one */data.pkl; this one "
                                         f"holds {len(pickles)}")
        prefix = pickles[0][: -len("data.pkl")]
        little = (archive.read(prefix + "byteorder").strip() != b"big"
                  if prefix + "byteorder" in names else True)
        storages = {}

        def read_storage(key, dtype, numel):
            if key not in storages:
                member = f"{prefix}data/{key}"
                if member not in names:
                    raise pickle.UnpicklingError(f"the storage {member} is missing")
                raw = archive.read(member)
                if len(raw) < numel * dtype.itemsize:
                    raise pickle.UnpicklingError(
                        f"the storage {member} holds {len(raw)} bytes, less than {numel} "
                        f"elements of {dtype}")
                array = np.frombuffer(raw, dtype, count=numel)
                storages[key] = array if little else array.byteswap()
            return storages[key]

        with archive.open(pickles[0]) as handle:
            state = _StateDictUnpickler(handle, read_storage).load()
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, np.ndarray) for k, v in state.items()):
        raise pickle.UnpicklingError("the pickle holds something other than a state dict of "
                                     "named tensors")
    return dict(state)
