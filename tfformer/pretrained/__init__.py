"""Reading pretrained checkpoints: one reader per file format (`checkpoint_files`), tensors
as NumPy arrays, nothing of PyTorch needed; their tokenizers as TensorFlow ops."""

from tfformer.pretrained.checkpoint_files import CheckpointError, read_state_dict
from tfformer.pretrained.marian_tokenizer import MarianTokenizer
from tfformer.pretrained.torch_pickle import UnsafeCheckpointError, read_torch_state_dict

__all__ = ["CheckpointError", "MarianTokenizer", "UnsafeCheckpointError", "read_state_dict",
           "read_torch_state_dict"]
