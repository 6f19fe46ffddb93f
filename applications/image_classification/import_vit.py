"""`tfformer import image_classification --from DIR --workdir RUN`: a pretrained ViT
classifier (a Hugging Face or a timm directory) as an image-classification run, which
`export`, `evaluate`, `classify` and fine-tuning (`train --init-from RUN`) use as they use
a trained one.

The run holds `config.json` (the checkpoint's architecture and preprocessing as an
`ImageClassificationConfig`, with fine-tuning defaults), `run_info.json` (the label names,
where the weights came from) and `checkpoints/last.weights.h5`.
"""

import os

from applications.common.imported_run import check_new_workdir, read_json_object, write_imported_run
from applications.image_classification import vit_checkpoint
from tfformer.pretrained import CheckpointError, read_state_dict

_HOLDS = (": a ViT directory holds config.json (Hugging Face: model_type 'vit', with "
          "preprocessor_config.json; timm: architecture and pretrained_cfg) and the weights")


def read_checkpoint(directory):
    """(config, class names, model, weights file, whether it has a classifier head) of the
    ViT checkpoint in `directory`."""
    path = os.path.join(directory, "config.json")
    description = read_json_object(path, hint=_HOLDS)
    if "architecture" in description:
        layout = "timm"
        config, names = vit_checkpoint.timm_config(description, path)
    elif "model_type" in description:
        layout = "hugging_face"
        preprocessor = read_json_object(
            os.path.join(directory, "preprocessor_config.json"), hint=_HOLDS)
        config, names = vit_checkpoint.hugging_face_config(description, preprocessor, path)
    else:
        raise CheckpointError(f"{path} has neither model_type (Hugging Face) nor architecture "
                              f"(timm){_HOLDS}")
    state_dict, weights_file = read_state_dict(directory)
    model, has_head = vit_checkpoint.build_pretrained_vit(
        config, names, state_dict, layout, os.path.join(directory, weights_file))
    return config, names, model, weights_file, has_head


def import_checkpoint(directory, workdir):
    """Writes the ViT checkpoint in `directory` as a run in `workdir`, which must not exist
    or be empty. Returns a one-line summary."""
    check_new_workdir(directory, workdir)
    config, names, model, weights_file, has_head = read_checkpoint(directory)
    write_imported_run(workdir, config, model, {
        "class_names": names, "imported_from": os.path.abspath(directory),
        "weights_file": weights_file})
    return (f"imported {os.path.join(directory, weights_file)} ({model.count_params():,} "
            f"parameters, {config.num_layers} layers, d {config.d_model}, "
            f"{config.image_size}x{config.image_size} in {config.patch_size}x{config.patch_size}"
            f" patches, {len(names)} classes) into {workdir}"
            + ("" if has_head else " with an untrained head (the checkpoint is a backbone: "
               "fine-tune it with `tfformer train image_classification --init-from`)")
            + f"; export it with `tfformer export image_classification --workdir {workdir}`")
