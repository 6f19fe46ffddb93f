"""Image classification, as the `tfformer` command line sees it (see
`applications.common.registry`)."""

from applications.common.registry import Application, ClientCommand, deferred
from applications.image_classification.config import (
    ARCHITECTURE,
    PRESETS,
    ImageClassificationConfig,
)


def _classify_arguments(parser):
    parser.add_argument("model", help="export directory (its latest version is used)")
    parser.add_argument("images", nargs="+", help="JPEG/PNG/BMP/GIF files")


def _top_k(outputs):
    labels = [label.decode() for label in outputs["top_k_labels"].numpy()[0]]
    scores = outputs["top_k_scores"].numpy()[0]
    return ", ".join(f"{label} {score:.3f}" for label, score in zip(labels, scores))


def _classify(args):
    from applications.common.export_client import serve_files

    return serve_files(args.model, args.images, "image_bytes", _top_k)


APPLICATION = Application.in_package(
    __package__,
    name="image_classification",
    summary="ViT-style 16x16-patch image classification",
    config_class=ImageClassificationConfig,
    presets=PRESETS,
    serving_input="image_bytes",
    client=ClientCommand("classify", "classify image files with an export",
                         _classify_arguments, _classify),
    evaluate_output="a confusion-matrix PNG",
    plot_attention=deferred(f"{__package__}.attention_plot", "plot_image_attention"),
    attention_input="an image file to classify",
    architecture=ARCHITECTURE,
    prepare=deferred(f"{__package__}.prepare", "prepare"),
    import_checkpoint=deferred(f"{__package__}.import_vit", "import_checkpoint"),
    import_from="a ViT classifier directory, Hugging Face (config.json, preprocessor_config.json"
                ", model.safetensors or pytorch_model.bin) or timm (config.json with "
                "architecture and pretrained_cfg, model.safetensors or pytorch_model.bin)",
)
