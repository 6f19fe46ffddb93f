"""Reading pretrained checkpoints: one reader per file format (`checkpoint_files`), tensors
as NumPy arrays, nothing of PyTorch needed."""

from tfformer.pretrained.checkpoint_files import CheckpointError, read_state_dict
from tfformer.pretrained.torch_pickle import UnsafeCheckpointError, read_torch_state_dict

__all__ = ["CheckpointError", "UnsafeCheckpointError", "read_state_dict",
           "read_torch_state_dict"]
