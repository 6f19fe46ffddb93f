"""The `tfformer` command line: parse, build a config, call into an application.

TensorFlow is imported only by the commands that use it, after parsing, with its C++
start-up lines muted unless `--verbose` (see `quiet_tensorflow`): `--help`, `--version` and
a bad setting answer at once.
"""

import argparse
import importlib
import os
import sys
from importlib import metadata

from applications.common.config import (
    ConfigError,
    apply_overrides,
    describe_fields,
    from_preset,
)
from applications.common.quantization import MODES as QUANTIZATION_MODES
from applications.common.quiet_tensorflow import import_tensorflow
from applications.common.run_options import PRECISIONS, STRATEGIES, TrainingDiverged

# name -> (config module, config class, default preset)
APPLICATIONS = {
    "translation": ("applications.translation.config", "TranslationConfig", "tiny"),
    "image_classification": ("applications.image_classification.config",
                             "ImageClassificationConfig", "tiny"),
    "speech_recognition": ("applications.speech_recognition.config",
                           "SpeechRecognitionConfig", "tiny"),
}


def _config(application, preset, overrides):
    module_name, class_name, default_preset = APPLICATIONS[application]
    module = importlib.import_module(module_name)
    config = from_preset(getattr(module, class_name), module.PRESETS, preset or default_preset)
    return apply_overrides(config, overrides)


def _train(args):
    config = _config(args.application, args.preset, args.set)
    if args.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    train = importlib.import_module(f"applications.{args.application}.train").train
    workdir = args.workdir or os.path.join("runs", args.application)
    export_dir = args.export_dir or os.path.join("saved_models", args.application)
    train(config, data_dir=args.data, workdir=workdir, export_dir=export_dir,
          strategy=args.strategy, mixed_precision=args.mixed_precision,
          jit_compile=args.jit_compile, resume="require" if args.resume else "auto")
    return 0


def _export(args):
    from applications.common.distributed import check_writable

    restore = importlib.import_module(f"applications.{args.application}.restore")
    workdir = args.workdir or os.path.join("runs", args.application)
    export_dir = args.export_dir or os.path.join("saved_models", args.application)
    check_writable(export_dir, "--export-dir")
    trained = restore.load(workdir, args.weights, args.quantize)
    path = trained.export(export_dir)
    print(f"exported {os.path.join(workdir, trained.weights)} to {path}")
    return 0


def _evaluate(args):
    config = _config(args.application, args.preset, args.set)
    evaluate = importlib.import_module(f"applications.{args.application}.evaluate").evaluate
    model = args.model or os.path.join("saved_models", args.application)
    result = evaluate(model, args.data, config, split=args.split, output=args.output)
    print(result["summary"])
    return 0


# What each application's serving_default takes, and the command that serves it.
EXPORT_KINDS = {"text": ("translation", "translate"),
                "image_bytes": ("image classification", "classify"),
                "audio_bytes": ("speech recognition", "transcribe")}


def _load_export(model, input_name):
    """The serving_default signature of `model`'s latest version, after checking that it
    takes `input_name` (an export of another application is named, with its command)."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the ops a translation export uses)

    from tfformer.export import latest_version_dir

    path = latest_version_dir(model)
    served = tf.saved_model.load(path)
    signature = served.signatures["serving_default"]
    inputs = set(signature.structured_input_signature[1])
    if input_name not in inputs:
        kind, command = next((EXPORT_KINDS[name] for name in inputs if name in EXPORT_KINDS),
                             (None, None))
        what = (f"a {kind} export: serve it with `tfformer {command}`" if kind else
                f"not a tfformer export (its serving_default takes {sorted(inputs)})")
        raise ValueError(f"{path} is {what}")
    return served


def _translate(args):
    import tensorflow as tf

    if args.text:
        sentences = args.text
    elif args.file:
        with open(args.file, encoding="utf-8") as handle:
            sentences = [line.rstrip("\n") for line in handle]
    else:
        sentences = [line.rstrip("\n") for line in sys.stdin]
    served = _load_export(args.model, "text")
    signature = served.signatures["greedy" if args.greedy else "serving_default"]
    for start in range(0, len(sentences), args.batch_size):
        batch = tf.constant(sentences[start:start + args.batch_size])
        for translation in signature(text=batch)["translation"].numpy():
            print(translation.decode("utf-8"))
    return 0


def _op_error_line(message):
    """The line of a TensorFlow op error that says what went wrong (the one before the
    `[[{{node ...}}]]` marker), without the graph-execution preamble."""
    lines = [line for line in message.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if line.strip().startswith("[[") and index > 0:
            line = lines[index - 1].strip()
            if line.startswith("assertion failed: [") and line.endswith("]"):  # tf.Assert's
                line = " ".join(line[len("assertion failed: ["):-1].split("] ["))
            return line
    return lines[-1].strip() if lines else message


def _serve_files(model, paths, input_name, describe):
    """Calls the export's serving_default on each file's bytes, one request per file, and
    prints `path: describe(outputs)`. A file that can't be read or that the export rejects
    prints its error and the next file is served; the exit status is 1 if any failed."""
    import tensorflow as tf

    signature = _load_export(model, input_name).signatures["serving_default"]
    failed = 0
    for path in paths:
        try:
            with open(path, "rb") as handle:
                contents = handle.read()
            outputs = signature(**{input_name: tf.constant([contents])})
        except OSError as error:
            print(f"{path}: error: {error.strerror or error}", file=sys.stderr)
        except tf.errors.InvalidArgumentError as error:
            print(f"{path}: error: {_op_error_line(error.message)}", file=sys.stderr)
        else:
            print(f"{path}: {describe(outputs)}")
            continue
        failed += 1
    if failed:
        print(f"{failed} of {len(paths)} files failed", file=sys.stderr)
    return 1 if failed else 0


def _classify(args):
    def describe(outputs):
        labels = [label.decode() for label in outputs["top_k_labels"].numpy()[0]]
        scores = outputs["top_k_scores"].numpy()[0]
        return ", ".join(f"{label} {score:.3f}" for label, score in zip(labels, scores))

    return _serve_files(args.model, args.images, "image_bytes", describe)


def _transcribe(args):
    if args.stream is None:
        if not args.audio:
            raise ValueError("transcribe needs WAV files, or --stream FILE|- for live audio")
        return _serve_files(args.model, args.audio, "audio_bytes",
                            lambda outputs: outputs["transcript"].numpy()[0].decode("utf-8"))
    if args.audio:
        raise ValueError(f"--stream {args.stream} streams one source; drop {args.audio}")
    if args.chunk_ms <= 0:
        raise ValueError(f"--chunk-ms must be positive, got {args.chunk_ms}")
    import tensorflow as tf

    from applications.speech_recognition.live_client import print_stream
    from tfformer import wav

    served = _load_export(args.model, "audio_bytes")
    try:
        print_stream(served, args.stream, args.chunk_ms)
    except tf.errors.InvalidArgumentError as error:  # raised eagerly (decoding) or traced
        raise ValueError(f"{args.stream}: {wav.error_reason(error)}") from None
    except IsADirectoryError as error:
        raise ValueError(f"{args.stream}: {error.strerror}") from None
    return 0


def _plot_attention(args):
    """Translation: the cross-attention its beam search used; image classification: the
    attention rollout over the image. Both from the export's `attention` signature."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the ops the export uses)

    from tfformer import plots
    from tfformer.export import latest_version_dir

    if not args.application or not args.input:
        raise ValueError('plot attention needs an application and an input: translation '
                         '"A sentence." or image_classification IMAGE_FILE')
    path = latest_version_dir(args.model or os.path.join("saved_models", args.application))
    served = tf.saved_model.load(path)
    if "attention" not in served.signatures:
        raise ValueError(f"{path} has no 'attention' signature; export it again with this version")
    attention = served.signatures["attention"]
    if args.application == "translation":
        outputs = attention(text=tf.constant([args.input]))
        print(outputs["translation"].numpy()[0].decode("utf-8"))
        plots.plot_cross_attention(outputs, args.output, layer=args.layer, head=args.head)
        return
    with open(args.input, "rb") as handle:
        image_bytes = handle.read()
    outputs = attention(image_bytes=tf.constant([image_bytes]))
    label = outputs["top_k_labels"].numpy()[0][0].decode("utf-8")
    print(f"{label} {outputs['top_k_scores'].numpy()[0][0]:.3f}")
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False).numpy()
    plots.plot_rollout(image, outputs["rollout"].numpy()[0], args.output,
                       title=f"attention rollout ({label})")


def _plot(args):
    from tfformer import plots

    if args.what == "positions":
        plots.plot_positions(args.kind, args.length, args.d_model, args.output)
    elif args.what == "attention":
        _plot_attention(args)
    else:
        if not args.logdir:
            raise ValueError("plot curves needs --logdir (e.g. runs/translation/logs)")
        plots.plot_training_curves(args.logdir, args.output)
    print(f"wrote {args.output}")
    return 0


class _HelpWithFields(argparse._HelpAction):
    """`tfformer train APPLICATION --help` also lists the application's config fields, with
    the chosen preset's values (default tiny) and what each means."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.print_help()
        application = getattr(namespace, "application", None)
        if application:
            module_name, class_name, default = APPLICATIONS[application]
            module = importlib.import_module(module_name)
            preset = getattr(namespace, "preset", None) or default
            config = from_preset(getattr(module, class_name), module.PRESETS, preset)
            print(f"\n{application} config fields (--set KEY=VALUE), preset {preset}:")
            print("\n".join(describe_fields(config)))
        else:
            print("\nName an application before --help to list its config fields.")
        parser.exit()


def _presets_help():
    lines = []
    for application, (module_name, _, default) in APPLICATIONS.items():
        presets = importlib.import_module(module_name).PRESETS
        names = ", ".join(f"{name} (default)" if name == default else name for name in presets)
        lines.append(f"  {application}: {names}")
    return "presets:\n" + "\n".join(lines)


def _version():
    try:
        return metadata.version("tfformer")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tfformer", description=__doc__.split("\n\n")[0],
        epilog=_presets_help() + "\n\n`tfformer train APPLICATION --help` lists its config "
        "fields, their defaults and meanings.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"tfformer {_version()}")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's start-up and C++ log lines")
    commands = parser.add_subparsers(dest="command", required=True)

    def config_options(command):
        command.add_argument("-h", "--help", action=_HelpWithFields,
                             help="show this help and, after an application, its config fields")
        command.add_argument("application", choices=sorted(APPLICATIONS))
        command.add_argument("--data", help="data directory (default: the built-in data)")
        command.add_argument("--preset", help="size preset (see `tfformer --help`; default "
                             "tiny)")
        command.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                             help="override a config field (repeatable)")

    train = commands.add_parser("train", help="train an application and export it",
                                add_help=False)
    config_options(train)
    train.add_argument("--workdir", help="checkpoints, logs, tokenizers (default runs/<app>)")
    train.add_argument("--export-dir", help="export base directory (default saved_models/<app>)")
    train.add_argument("--strategy", choices=STRATEGIES, default="auto")
    train.add_argument("--mixed-precision", choices=sorted(PRECISIONS), default="none",
                       help="bf16 or fp16 (with loss scaling) compute; weights stay float32")
    train.add_argument("--jit-compile", action="store_true", help="compile training with XLA")
    train.add_argument("--deterministic", action="store_true",
                       help="deterministic TensorFlow ops: the same command gives the same "
                       "weights, also when resumed after a crash (slower)")
    train.add_argument("--resume", action="store_true",
                       help="require a backup in --workdir to resume (without it, a backup is "
                       "resumed when there is one)")
    train.set_defaults(handler=_train)

    export = commands.add_parser(
        "export", help="export a finished or interrupted run's weights again")
    export.add_argument("application", choices=sorted(APPLICATIONS))
    export.add_argument("--workdir", help="the run's directory (default runs/<app>)")
    export.add_argument("--export-dir", help="export base directory (default saved_models/<app>)")
    export.add_argument("--weights", choices=("best", "last"),
                        help="the best validation epoch's or the last (default: the run's "
                        "export_weights)")
    export.add_argument("--quantize", choices=QUANTIZATION_MODES,
                        help="quantize the weights before exporting (default: the run's "
                        "quantize setting)")
    export.set_defaults(handler=_export)

    evaluate = commands.add_parser("evaluate", help="score an export on a data split",
                                   add_help=False)
    config_options(evaluate)
    evaluate.add_argument("--model", help="export directory (default saved_models/<app>)")
    evaluate.add_argument("--split", default="test", choices=("train", "val", "test"))
    evaluate.add_argument("--output", help="translation: hypotheses, one per line; "
                          "image_classification: a confusion-matrix PNG; "
                          "speech_recognition: transcripts, one per line")
    evaluate.set_defaults(handler=_evaluate)

    translate = commands.add_parser("translate", help="translate text with an export")
    translate.add_argument("model", help="export directory (its latest version is used)")
    translate.add_argument("text", nargs="*", help="sentences (default: --file or stdin)")
    translate.add_argument("--file", help="a file with one sentence per line")
    translate.add_argument("--greedy", action="store_true", help="greedy instead of beam search")
    translate.add_argument("--batch-size", type=int, default=32)
    translate.set_defaults(handler=_translate)

    classify = commands.add_parser("classify", help="classify image files with an export")
    classify.add_argument("model", help="export directory (its latest version is used)")
    classify.add_argument("images", nargs="+", help="JPEG/PNG/BMP/GIF files")
    classify.set_defaults(handler=_classify)

    transcribe = commands.add_parser(
        "transcribe", help="transcribe WAV files with an export, or stream live audio")
    transcribe.add_argument("model", nargs="?", default="saved_models/speech_recognition",
                            help="export directory (its latest version is used; default "
                            "%(default)s)")
    transcribe.add_argument("audio", nargs="*", help="WAV files (any rate, mono or stereo)")
    transcribe.add_argument(
        "--stream", metavar="FILE|-", help="send a WAV file, or raw 16-bit mono PCM at the "
        "model's rate from standard input (-), through the export's stream_step chunk by chunk, "
        "printing each word when it appears: `arecord -f S16_LE -r 8000 -c 1 | tfformer "
        "transcribe --stream - MODEL` captions live")
    transcribe.add_argument("--chunk-ms", type=float, default=320.0,
                            help="audio per stream_step call, in ms (default %(default)s)")
    transcribe.set_defaults(handler=_transcribe)

    plot = commands.add_parser("plot", help="draw position encodings or training curves")
    plot.add_argument("what", choices=("positions", "curves", "attention"))
    plot.add_argument("application", nargs="?", choices=("translation", "image_classification"),
                      help="for attention: the application whose export to ask")
    plot.add_argument("input", nargs="?", help="for attention: a sentence to translate, or "
                      "an image file to classify")
    plot.add_argument("--model", help="for attention: export directory "
                      "(default saved_models/<application>)")
    plot.add_argument("--layer", type=int, default=-1, help="for attention: decoder layer")
    plot.add_argument("--head", type=int, help="for attention: one head (default: all, in a grid)")
    plot.add_argument("--kind", choices=("sinusoidal", "learned", "rotary"), default="sinusoidal")
    plot.add_argument("--length", type=int, default=64)
    plot.add_argument("--d-model", type=int, default=128)
    plot.add_argument("--logdir", help="TensorBoard logs of a run, for curves")
    plot.add_argument("--output", default="plot.png")
    plot.set_defaults(handler=_plot)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if hasattr(args, "set"):  # a bad setting is named before TensorFlow starts
            _config(args.application, args.preset, args.set)
        import_tensorflow(args.verbose)
        return args.handler(args)
    except (ConfigError, ValueError, FileNotFoundError) as error:
        parser.exit(2, f"tfformer {args.command}: error: {error}\n")
    except TrainingDiverged as error:
        parser.exit(1, f"tfformer {args.command}: {error}\n")


if __name__ == "__main__":
    sys.exit(main())
