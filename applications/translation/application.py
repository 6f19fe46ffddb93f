"""Translation, as the `tfformer` command line sees it (see `applications.common.registry`)."""

import sys

from applications.common.registry import Application, ClientCommand, deferred
from applications.translation.config import ARCHITECTURE, PRESETS, TranslationConfig


def _translate_arguments(parser):
    parser.add_argument("model", help="export directory (its latest version is used)")
    parser.add_argument("text", nargs="*", default=[],
                        help="sentences (default: --file, or standard input, one per line)")
    parser.add_argument("--file", help="a file with one sentence per line")
    parser.add_argument("--greedy", action="store_true", help="greedy instead of beam search")
    parser.add_argument("--batch-size", type=int, default=32)


def _translate(args):
    import tensorflow as tf

    from applications.common.export_client import load_export

    if args.text:
        sentences = args.text
    elif args.file:
        with open(args.file, encoding="utf-8") as handle:
            sentences = [line.rstrip("\n") for line in handle]
    else:
        if sys.stdin.isatty():
            print("translating the lines typed here; end with Ctrl-D", file=sys.stderr)
        sentences = [line.rstrip("\n") for line in sys.stdin]
    served = load_export(args.model, "text")
    signature = served.signatures["greedy" if args.greedy else "serving_default"]
    for start in range(0, len(sentences), args.batch_size):
        batch = tf.constant(sentences[start:start + args.batch_size])
        for translation in signature(text=batch)["translation"].numpy():
            print(translation.decode("utf-8"))
    return 0


APPLICATION = Application.in_package(
    __package__,
    name="translation",
    summary="text translation (Transformer encoder-decoder, SentencePiece in the graph)",
    config_class=TranslationConfig,
    presets=PRESETS,
    serving_input="text",
    client=ClientCommand("translate", "translate text with an export",
                         _translate_arguments, _translate),
    evaluate_output="hypotheses, one per line",
    plot_attention=deferred(f"{__package__}.attention_plot", "plot_translation_attention"),
    attention_input='a sentence to translate, e.g. "A red apple."',
    architecture=ARCHITECTURE,
    prepare=deferred(f"{__package__}.prepare", "prepare"),
    import_checkpoint=deferred(f"{__package__}.import_marian", "import_checkpoint"),
    import_from="a Hugging Face Marian (opus-mt) directory: config.json, model.safetensors "
                "or pytorch_model.bin, source.spm, target.spm, vocab.json",
)
