"""`tfformer import translation --from DIR --workdir RUN`: a Hugging Face Marian (opus-mt)
directory as a translation run, which `export`, `evaluate`, `translate` and fine-tuning
(`train --init-from RUN`) then use as they use a trained one.

The run holds `config.json` (the checkpoint's `TranslationConfig`), `tokenizer/`
(`source.spm`, `target.spm`, `vocab.json`), `checkpoints/last.weights.h5` and
`run_info.json` (where it came from). It is written beside the workdir and renamed into
place, so an import that fails leaves no run behind.
"""

import os

from applications.common.imported_run import check_new_workdir, read_json_object, write_imported_run
from applications.translation.marian_checkpoint import load_marian_weights, marian_config
from applications.translation.model import build_translator
from applications.translation.vocabularies import MARIAN_FILES
from tfformer.pretrained import CheckpointError, read_state_dict

_HOLDS = (": a Marian directory holds config.json, the weights, source.spm, target.spm and "
          "vocab.json")


def _read_json(directory, name, required=True):
    return read_json_object(os.path.join(directory, name), required, _HOLDS)


def _check_vocabulary(directory, hf_config):
    """vocab.json must name every embedding row, with Marian's special tokens."""
    vocabulary = _read_json(directory, "vocab.json")
    path = os.path.join(directory, "vocab.json")
    missing = [token for token in ("</s>", "<unk>", "<pad>") if token not in vocabulary]
    if missing:
        raise CheckpointError(f"{path} has no {', '.join(missing)}")
    size = max(vocabulary.values()) + 1
    if size != hf_config["vocab_size"]:
        raise CheckpointError(f"{path} has ids up to {size - 1}, but config.json's vocab_size "
                              f"is {hf_config['vocab_size']}: the vocabulary does not match "
                              "the embedding")
    if vocabulary["<pad>"] != hf_config.get("pad_token_id", vocabulary["<pad>"]):
        raise CheckpointError(f"{path} has <pad> {vocabulary['<pad>']}, but config.json's "
                              f"pad_token_id is {hf_config['pad_token_id']}")


def import_checkpoint(directory, workdir):
    """Writes the Marian checkpoint in `directory` as a translation run in `workdir`, which
    must not exist or be empty. Returns a one-line summary."""
    check_new_workdir(directory, workdir)
    hf_config = _read_json(directory, "config.json")
    config = marian_config(hf_config, _read_json(directory, "generation_config.json", False),
                           _read_json(directory, "tokenizer_config.json", False))
    for name in MARIAN_FILES:
        if not os.path.exists(os.path.join(directory, name)):
            raise CheckpointError(f"{directory} has no {name}{_HOLDS}")
    _check_vocabulary(directory, hf_config)
    state_dict, weights_file = read_state_dict(directory)
    model = build_translator(config, hf_config["vocab_size"], hf_config["vocab_size"],
                             hf_config["pad_token_id"])
    load_marian_weights(model, state_dict, weights_file)

    tokenizer = {f"tokenizer/{name}": os.path.join(directory, name) for name in MARIAN_FILES}
    write_imported_run(workdir, config, model, {"imported_from": os.path.abspath(directory),
                                                "weights_file": weights_file}, tokenizer)
    parameters = sum(int(w.numpy().size) for w in model.weights)
    return (f"imported {os.path.join(directory, weights_file)} ({parameters:,} parameters, "
            f"{config.num_layers}+{config.num_layers} layers, d {config.d_model}) into "
            f"{workdir}; export it with `tfformer export translation --workdir {workdir}`")
