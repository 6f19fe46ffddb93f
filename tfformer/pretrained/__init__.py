"""Reading pretrained checkpoints: one reader per file format (`checkpoint_files`), tensors
as NumPy arrays, nothing of PyTorch needed; their tokenizers as TensorFlow ops; BERT as a
Keras model of tfformer layers (`bert`)."""

from tfformer.pretrained.bert import bert_encoder, build_bert
from tfformer.pretrained.bert_tokenizer import BertTokenizer
from tfformer.pretrained.checkpoint_files import CheckpointError, read_state_dict
from tfformer.pretrained.marian_tokenizer import MarianTokenizer
from tfformer.pretrained.torch_pickle import UnsafeCheckpointError, read_torch_state_dict

__all__ = ["BertTokenizer", "CheckpointError", "MarianTokenizer", "UnsafeCheckpointError",
           "bert_encoder", "build_bert", "read_state_dict", "read_torch_state_dict"]
