"""Pretrained ViT classifiers in the two layouts users download, as a `VisionTransformer`:
each layout's config as an `ImageClassificationConfig` (architecture and preprocessing),
its label names, and one table from checkpoint names to our weights, each transpose and
reshape beside its name.

- Hugging Face (`ViTForImageClassification`, as in `google/vit-base-patch16-224`):
  `config.json` (`model_type: vit`, `layer_norm_eps` 1e-12, exact GELU, `id2label`) and
  `preprocessor_config.json` (stretch to the model's size with PIL's bilinear kernel, mean
  and std).
- timm (`vit_base_patch16_224.augreg2_in21k_ft_in1k`): `config.json` with `architecture`
  (its name fixes the width, depth and heads; `model_args` overrides them),
  `pretrained_cfg` (input size, interpolation, `crop_pct`, mean, std) and `label_names`;
  layer-norm eps 1e-6 and a fused `qkv` projection.

Both are the pre-LN ViT with a class token, learned positions (the class token's first) and
a final layer norm before the head reads the class token.
"""

import re

import numpy as np

from applications.image_classification.config import ImageClassificationConfig
from applications.image_classification.model import build_vit
from tfformer.pretrained import CheckpointError
from tfformer.pretrained import weight_mapping as mapping

# What fine-tuning a pretrained ViT starts with (the run's config; `--set` changes them):
# AdamW at a peak of 1e-4 after 10% warm-up, cosine decay, weight decay 0.05, label
# smoothing 0.1, 5 epochs; no layer is frozen.
FINE_TUNING = {"learning_rate": 1e-4, "warmup_fraction": 0.1, "weight_decay": 0.05,
               "label_smoothing": 0.1, "epochs": 5, "dropout": 0.0}

_RESAMPLE = {2: "bilinear", 3: "bicubic"}  # PIL's resampling codes
# timm's ViT sizes: (width, depth, heads); the MLP is 4x the width.
_TIMM_SIZES = {"tiny": (192, 12, 3), "small": (384, 12, 6), "medium": (512, 12, 8),
               "base": (768, 12, 12), "large": (1024, 24, 16), "huge": (1280, 32, 16)}


def _square(value, what):
    if isinstance(value, int):
        return value
    if isinstance(value, (list, tuple)) and len(set(value)) == 1:
        return int(value[0])
    raise CheckpointError(f"{what} is {value}: only square images are supported")


def _check_patches(source, image_size, patch_size):
    if image_size % patch_size:
        raise CheckpointError(f"{source} has image size {image_size}, which patch size "
                              f"{patch_size} does not divide")


def _config(source, image_size, patch_size, **fields):
    _check_patches(source, image_size, patch_size)
    return ImageClassificationConfig(
        image_size=image_size, patch_size=patch_size, pooling="class_token",
        shifted_patches=False, **{**FINE_TUNING, **fields})


def hugging_face_config(hf_config, preprocessor, source="config.json"):
    """(ImageClassificationConfig, class names) of a Hugging Face ViT classifier, from its
    `config.json` and `preprocessor_config.json` (dicts)."""
    if hf_config.get("model_type") != "vit":
        raise CheckpointError(f"{source} describes a {hf_config.get('model_type')!r} model, "
                              "not a ViT (model_type 'vit')")
    if hf_config.get("hidden_act", "gelu") != "gelu":
        raise CheckpointError(f"{source}'s hidden_act {hf_config['hidden_act']!r} is not "
                              "supported (ViT uses 'gelu', exact)")
    if not hf_config.get("qkv_bias", True) or hf_config.get("num_channels", 3) != 3:
        raise CheckpointError(f"{source} has qkv_bias false or num_channels other than 3, "
                              "which is not supported")
    labels = hf_config.get("id2label") or {"0": "LABEL_0", "1": "LABEL_1"}  # HF's default
    names = [labels[key] for key in sorted(labels, key=int)]
    image_size = _square(hf_config.get("image_size", 224), f"{source}'s image_size")
    _check_patches(source, image_size, hf_config.get("patch_size", 16))
    mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    if preprocessor.get("do_normalize", True):
        mean = tuple(preprocessor.get("image_mean", (0.5, 0.5, 0.5)))
        std = tuple(preprocessor.get("image_std", (0.5, 0.5, 0.5)))
    size = preprocessor.get("size", {"height": image_size, "width": image_size})
    size = size if isinstance(size, dict) else {"height": size, "width": size}
    if (preprocessor.get("do_resize", True) and (size.get("height"), size.get("width")) != (
            image_size, image_size)) or preprocessor.get("do_center_crop"):
        raise CheckpointError(f"preprocessor_config.json resizes to {size} "
                              f"(center crop {preprocessor.get('do_center_crop', False)}), "
                              f"but the model takes {image_size}x{image_size}: only a resize "
                              "to the model's size is supported")
    if abs(preprocessor.get("rescale_factor", 1 / 255) * 255 - 1) > 1e-6 or not (
            preprocessor.get("do_rescale", True)):
        raise CheckpointError("preprocessor_config.json does not rescale pixels by 1/255, "
                              "which is not supported")
    resample = preprocessor.get("resample", 2)
    if resample not in _RESAMPLE:
        raise CheckpointError(f"preprocessor_config.json's resample {resample} is not "
                              "supported (2 bilinear, 3 bicubic)")
    layers = hf_config.get("num_hidden_layers", 12)
    width = hf_config.get("hidden_size", 768)
    return _config(
        source, image_size, hf_config.get("patch_size", 16), num_layers=layers, d_model=width,
        num_heads=hf_config.get("num_attention_heads", 12),
        intermediate_dim=hf_config.get("intermediate_size", 3072),
        layer_norm_epsilon=hf_config.get("layer_norm_eps", 1e-12), image_mean=mean,
        image_std=std, resize_method=_RESAMPLE[resample], center_crop=None,
        top_k=min(5, len(names))), names


def _timm_shape(architecture, model_args, source):
    """{image_size, patch_size, d_model, num_layers, num_heads, intermediate_dim}."""
    match = re.fullmatch(r"vit_(\w+?)_patch(\d+)_(\d+)", architecture.split(".")[0])
    shape = {}
    if match and match.group(1) in _TIMM_SIZES:
        width, depth, heads = _TIMM_SIZES[match.group(1)]
        shape = {"embed_dim": width, "depth": depth, "num_heads": heads,
                 "patch_size": int(match.group(2)), "img_size": int(match.group(3))}
    shape.update({key: model_args[key] for key in
                  ("embed_dim", "depth", "num_heads", "patch_size", "img_size", "mlp_ratio")
                  if key in model_args})
    missing = {"embed_dim", "depth", "num_heads", "patch_size", "img_size"} - set(shape)
    if missing:
        raise CheckpointError(f"{source}'s architecture {architecture!r} is not a plain "
                              f"timm ViT (vit_SIZE_patchP_RES) and model_args does not give "
                              f"{', '.join(sorted(missing))}")
    return shape


_TIMM_UNSUPPORTED = {  # model_args that change the architecture: (supported value, what)
    "class_token": (True, "a class token"), "global_pool": ("token", "class-token pooling"),
    "no_embed_class": (False, "positions for the class token"), "reg_tokens": (0, "no registers"),
    "pre_norm": (False, "no pre-norm"), "fc_norm": (None, "no fc_norm"),
    "init_values": (None, "no layer scale"), "qkv_bias": (True, "qkv biases"),
    "in_chans": (3, "RGB input"), "qk_norm": (False, "no q/k norm"),
}


def timm_config(timm_json, source="config.json"):
    """(ImageClassificationConfig, class names) of a timm ViT, from its `config.json`."""
    architecture = timm_json.get("architecture", "")
    if not architecture.startswith("vit_"):
        raise CheckpointError(f"{source}'s architecture {architecture!r} is not a timm "
                              "VisionTransformer (vit_...)")
    model_args = timm_json.get("model_args") or {}
    for key, (supported, what) in _TIMM_UNSUPPORTED.items():
        value = model_args.get(key, timm_json.get(key) if key == "global_pool" else None)
        if value is not None and value != supported and not (supported is None and not value):
            raise CheckpointError(f"{source} has {key}={value!r}; only ViTs with {what} are "
                                  "supported")
    shape = _timm_shape(architecture, model_args, source)
    pretrained = timm_json.get("pretrained_cfg") or {}
    input_size = pretrained.get("input_size") or [3, shape["img_size"], shape["img_size"]]
    image_size = _square(list(input_size[1:]), f"{source}'s pretrained_cfg input_size")
    interpolation = pretrained.get("interpolation", "bicubic")
    if interpolation not in ("bilinear", "bicubic"):
        raise CheckpointError(f"{source}'s interpolation {interpolation!r} is not supported "
                              "(bilinear, bicubic)")
    if pretrained.get("crop_mode", "center") != "center":
        raise CheckpointError(f"{source}'s crop_mode {pretrained['crop_mode']!r} is not "
                              "supported (center)")
    names = timm_json.get("label_names")
    classes = timm_json.get("num_classes", pretrained.get("num_classes"))
    if isinstance(names, dict):
        names = [names[key] for key in sorted(names, key=int)]
    names = [str(name) for name in names] if names else [str(i) for i in range(classes or 0)]
    if not names:
        raise CheckpointError(f"{source} has no num_classes: a classifier is needed")
    width = shape["embed_dim"]
    return _config(
        source, image_size, shape["patch_size"], num_layers=shape["depth"], d_model=width,
        num_heads=shape["num_heads"], intermediate_dim=int(width * shape.get("mlp_ratio", 4.0)),
        layer_norm_epsilon=1e-6, image_mean=tuple(pretrained.get("mean", (0.5, 0.5, 0.5))),
        image_std=tuple(pretrained.get("std", (0.5, 0.5, 0.5))), resize_method=interpolation,
        center_crop=float(pretrained.get("crop_pct", 0.875)), top_k=min(5, len(names))), names


def _conv_kernel(weight):
    """Conv2d (D, C, p, p) -> our patch projection (p, p, C, D)."""
    return weight.transpose(2, 3, 1, 0)


def _embeddings(class_token, positions, projection):
    """The class token, the positions ((1, 1 + P, D): the class token's first) and the
    patch projection."""
    return {
        "patch_embedding/class_token": (class_token, None),
        "patch_embedding/class_position": (positions, lambda table: table[:, :1]),
        "patch_embedding/position_embeddings": (positions, lambda table: table[0, 1:]),
        "patch_embedding/projection/kernel": (f"{projection}.weight", _conv_kernel),
        "patch_embedding/projection/bias": (f"{projection}.bias", None),
    }


def _table(embeddings, num_layers, block, final_norm, head):
    """The whole table: `block(index, ours)` gives one layer's (attention table, norm before
    attention, first and second MLP linear, norm before the MLP)."""
    table = dict(embeddings)
    for index in range(num_layers):
        ours = f"encoder/layer_{index}"
        attention, norm_before, first, second, norm_after = block(index, ours)
        table.update(attention)
        table.update(mapping.norm(f"{ours}/self_attention_norm", norm_before))
        table.update(mapping.feed_forward(f"{ours}/feed_forward", first, second))
        table.update(mapping.norm(f"{ours}/feed_forward_norm", norm_after))
    table.update(mapping.norm("encoder/final_norm", final_norm))
    table["head/kernel"] = (f"{head}.weight", mapping.linear_kernel)
    table["head/bias"] = (f"{head}.bias", None)
    return table


def hugging_face_table(num_layers, num_heads):
    """{our weight path: (checkpoint name, transform)} for `ViTForImageClassification`."""
    def block(index, ours):
        theirs = f"vit.encoder.layer.{index}"
        attention = f"{theirs}.attention.attention"
        return (mapping.attention(f"{ours}/self_attention", f"{attention}.query",
                                  f"{attention}.key", f"{attention}.value",
                                  f"{theirs}.attention.output.dense", num_heads),
                f"{theirs}.layernorm_before", f"{theirs}.intermediate.dense",
                f"{theirs}.output.dense", f"{theirs}.layernorm_after")

    embeddings = _embeddings("vit.embeddings.cls_token", "vit.embeddings.position_embeddings",
                             "vit.embeddings.patch_embeddings.projection")
    return _table(embeddings, num_layers, block, "vit.layernorm", "classifier")


def timm_table(num_layers, num_heads):
    """{our weight path: (checkpoint name, transform)} for timm's `VisionTransformer`."""
    def block(index, ours):
        theirs = f"blocks.{index}"
        return (mapping.fused_attention(f"{ours}/self_attention", f"{theirs}.attn.qkv",
                                        f"{theirs}.attn.proj", num_heads),
                f"{theirs}.norm1", f"{theirs}.mlp.fc1", f"{theirs}.mlp.fc2", f"{theirs}.norm2")

    embeddings = _embeddings("cls_token", "pos_embed", "patch_embed.proj")
    return _table(embeddings, num_layers, block, "norm", "head")


def build_pretrained_vit(config, class_names, state_dict, layout, source="the checkpoint"):
    """(a `VisionTransformer` of `config`'s shape holding the checkpoint's weights, whether
    the checkpoint has a classifier head); `layout` is "hugging_face" or "timm". A
    checkpoint without a head (a backbone) gets a zero one."""
    model = build_vit(config, len(class_names))
    table = (hugging_face_table if layout == "hugging_face" else timm_table)(
        config.num_layers, config.num_heads)
    if layout == "hugging_face" and "embeddings.cls_token" in state_dict:
        # A backbone saved as ViTModel (google/vit-base-patch16-224-in21k): no "vit." prefix.
        state_dict = {f"vit.{name}": value for name, value in state_dict.items()}
    head = table["head/kernel"][0]
    has_head = head in state_dict
    if not has_head:  # a backbone: the head starts at zero, for fine-tuning to train
        table = {path: entry for path, entry in table.items() if not path.startswith("head/")}
        model.head.kernel.assign(np.zeros(model.head.kernel.shape, np.float32))
        model.head.bias.assign(np.zeros(model.head.bias.shape, np.float32))
    # ViTModel's pooler (a dense + tanh on the class token) is not what the classifier reads.
    skip = [name for name in state_dict if name.startswith("vit.pooler.")]
    mapping.assign_weights(model, table, state_dict, source, skip=skip, partial=not has_head)
    return model, has_head
