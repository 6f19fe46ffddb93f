"""The `tfformer` command line: parse, build a config, call into an application.

The commands are built from the applications' descriptions
(`applications.common.registry`): each gives its config, presets, train,
evaluate and load, the command that serves its exports, and its attention
plot. TensorFlow is imported only by the commands that use it, after parsing,
with its C++ start-up lines muted unless `--verbose` (see `quiet_tensorflow`):
`--help`, `--version` and a bad setting answer at once.
"""

import argparse
import os
import sys
from importlib import metadata

from applications.common.config import (
    ConfigError,
    apply_overrides,
    describe_fields,
    from_preset,
)
from applications.common.export_client import WrongExportError
from applications.common.quantization import MODES as QUANTIZATION_MODES
from applications.common.quiet_tensorflow import import_tensorflow
from applications.common.registry import discover
from applications.common.run_directory import with_article
from applications.common.run_options import (
    PRECISIONS,
    STRATEGIES,
    ExportFailed,
    TrainingDiverged,
    TrainingInterrupted,
)


def _config(application, preset, overrides):
    config = from_preset(application.config_class, application.presets,
                         preset or application.default_preset)
    return apply_overrides(config, overrides)


def _initial_config(application, init_from, preset, overrides):
    """The config of a run that starts from the run in `init_from`: its architecture and
    settings, with `overrides` on the fields that do not fix the weights."""
    from applications.common.restore import read_run

    if not application.architecture:
        raise ConfigError(f"{application.name} can't start from another run yet (--init-from)")
    if preset:
        raise ConfigError(f"--preset sets a size, which --init-from takes from {init_from}; "
                          "change training settings with --set")
    base, _ = read_run(init_from, application.config_class)
    config = apply_overrides(base, overrides)
    fixed = [f"{name} (is {getattr(base, name)!r})" for name in application.architecture
             if getattr(config, name) != getattr(base, name)]
    if fixed:
        raise ConfigError(f"{', '.join(fixed)} can't change: {init_from}'s weights fix it")
    return config


def _train_config(args):
    application = args.applications[args.application]
    if getattr(args, "init_from", None):
        return _initial_config(application, args.init_from, args.preset, args.set)
    return _config(application, args.preset, args.set)


def _is_checkpoint_directory(application, path):
    """A downloaded checkpoint (that `tfformer import` reads), not a run."""
    return bool(path and application.import_checkpoint and os.path.isdir(path)
                and not os.path.isdir(os.path.join(path, "checkpoints")))


def _train(args):
    import contextlib
    import tempfile

    application = args.applications[args.application]
    with contextlib.ExitStack() as stack:
        if _is_checkpoint_directory(application, args.init_from):
            temporary = stack.enter_context(tempfile.TemporaryDirectory(prefix="tfformer-"))
            run = os.path.join(temporary, "imported")
            print(application.import_checkpoint(args.init_from, run).split(";")[0]
                  + " (for this run only; `tfformer import` keeps an imported run)")
            args.init_from = run
        return _train_run(application, args)


def _train_run(application, args):
    config = _train_config(args)
    if args.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    workdir = args.workdir or os.path.join("runs", args.application)
    export_dir = args.export_dir or os.path.join("saved_models", args.application)
    application.train(config, data_dir=args.data, workdir=workdir, export_dir=export_dir,
                      strategy=args.strategy, mixed_precision=args.mixed_precision,
                      jit_compile=args.jit_compile,
                      resume="fresh" if args.fresh else "require" if args.resume else "auto",
                      **({"init_from": args.init_from} if args.init_from else {}),
                      **({"data_service": args.data_service} if args.data_service else {}))
    return 0


def _data_service(args):
    import socket

    from applications.common import data_service

    port = args.port or (5050 if args.role == "dispatcher" else 5051)
    if args.role == "dispatcher":
        if not args.workers:
            raise ConfigError("a dispatcher needs its workers' addresses: --workers "
                              "HOST:PORT,HOST:PORT (each worker splits every pass with the "
                              "others, so the dispatcher must know them all)")
        server = data_service.dispatcher(port, args.workers.split(","), args.work_dir)
        print(f"tf.data service dispatcher on port {port} for {args.workers}; train with "
              f"--data-service grpc://{socket.getfqdn()}:{port}", flush=True)
    else:
        if not args.dispatcher:
            raise ConfigError("a worker needs --dispatcher grpc://HOST:PORT")
        address = args.address or f"{socket.getfqdn()}:{port}"
        server = data_service.worker(args.dispatcher, port, address)
        print(f"tf.data service worker {address} of {args.dispatcher}", flush=True)
    try:
        server.join()
    except KeyboardInterrupt:
        print("stopped")
    return 0


def _export(args):
    from applications.common.run_options import ExportFailed
    from applications.common.training_run import check_writable

    workdir = args.workdir or os.path.join("runs", args.application)
    export_dir = args.export_dir or os.path.join("saved_models", args.application)
    check_writable(export_dir, "--export-dir")
    trained = args.applications[args.application].load(workdir, args.weights, args.quantize)
    try:
        path = trained.export(export_dir)
    except OSError as error:
        raise ExportFailed(f"exporting to {export_dir} failed ({error}); the run in {workdir} "
                           "is unchanged: make room or fix the directory and export again"
                           ) from error
    print(f"exported {os.path.join(workdir, trained.weights)} to {path}")
    return 0


def _import(args):
    workdir = args.workdir or os.path.join("runs", args.application)
    print(args.applications[args.application].import_checkpoint(args.source, workdir))
    return 0


def _prepare(args):
    application = args.applications[args.application]
    if args.shards < 1:
        raise ConfigError(f"--shards must be at least 1, got {args.shards}")
    config = _config(application, args.preset, args.set)
    print(application.prepare(args.data, args.output, config, args.shards))
    return 0


def _evaluate(args):
    application = args.applications[args.application]
    config = _config(application, args.preset, args.set)
    model = args.model or os.path.join("saved_models", args.application)
    result = application.evaluate(model, args.data, config, split=args.split, output=args.output)
    print(result["summary"])
    return 0


def _plot_attention(args):
    """Asks the export's `attention` signature about one input and draws its answer, as
    the application describes."""
    from applications.common.export_client import load_export

    plotted = {name: app for name, app in args.applications.items() if app.plot_attention}
    if not args.application or not args.input:
        inputs = " or ".join(f"{name} ({app.attention_input})" for name, app in plotted.items())
        raise ValueError(f"plot attention needs an application and an input: {inputs}")
    if args.application not in plotted:
        raise ValueError(f"{args.application} has no attention plot; these do: "
                         f"{', '.join(plotted)}")
    application = plotted[args.application]
    model = args.model or os.path.join("saved_models", args.application)
    served = load_export(model, application.serving_input)  # another kind of export: named
    if "attention" not in served.signatures:
        raise ValueError(f"{model} has no 'attention' signature; export it again with "
                         "this version")
    application.plot_attention(served.signatures["attention"], args.input, args.output,
                               layer=args.layer, head=args.head)


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

    def __init__(self, *args, applications, **kwargs):
        super().__init__(*args, **kwargs)
        self.applications = applications

    def __call__(self, parser, namespace, values, option_string=None):
        parser.print_help()
        name = getattr(namespace, "application", None)
        if name:
            application = self.applications[name]
            preset = getattr(namespace, "preset", None) or application.default_preset
            config = from_preset(application.config_class, application.presets, preset)
            print(f"\n{name} config fields (--set KEY=VALUE), preset {preset}:")
            print("\n".join(describe_fields(config)))
        else:
            print("\nName an application before --help to list its config fields.")
        parser.exit()


def _applications_help(applications):
    lines = []
    for name, application in applications.items():
        presets = ", ".join(f"{preset} (default)" if preset == application.default_preset
                            else preset for preset in application.presets)
        lines.append(f"  {name}: {application.summary}\n    presets: {presets}; serve with "
                     f"`tfformer {application.client.name}`")
    return "applications:\n" + "\n".join(lines)


def _version():
    try:
        return metadata.version("tfformer")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser(applications=None):
    """The argument parser, with commands for `applications` ({name: Application}; default
    every one `discover()` finds)."""
    applications = discover() if applications is None else applications
    names = sorted(applications)
    parser = argparse.ArgumentParser(
        prog="tfformer", description=__doc__.split("\n\n")[0],
        epilog=_applications_help(applications) + "\n\n`tfformer train APPLICATION --help` "
        "lists its config fields, their defaults and meanings.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(applications=applications)
    parser.add_argument("--version", action="version", version=f"tfformer {_version()}")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's start-up and C++ log lines")
    commands = parser.add_subparsers(dest="command", required=True)

    def config_options(command):
        command.add_argument("-h", "--help", action=_HelpWithFields, applications=applications,
                             help="show this help and, after an application, its config fields")
        command.add_argument("application", choices=names)
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
    train.add_argument("--init-from", metavar="RUN", help="start from the weights (and "
                       "tokenizer) of a finished or imported run, or of a checkpoint directory "
                       "that `tfformer import` reads, with its architecture: fine-tuning; "
                       "--set changes training settings")
    train.add_argument("--data-service", metavar="grpc://HOST:PORT",
                       help="run the training input pipeline on the workers of this tf.data "
                       "service dispatcher (`tfformer data-service`)")
    starts = train.add_mutually_exclusive_group()
    starts.add_argument("--resume", action="store_true",
                        help="require a backup in --workdir to resume (without it, a backup is "
                        "resumed when there is one)")
    starts.add_argument("--fresh", action="store_true",
                        help="start a new run in --workdir, setting an earlier run there aside "
                        "in <workdir>/set_aside/ (nothing is deleted)")
    train.set_defaults(handler=_train)

    export = commands.add_parser(
        "export", help="export a finished or interrupted run's weights again")
    export.add_argument("application", choices=names)
    export.add_argument("--workdir", help="the run's directory (default runs/<app>)")
    export.add_argument("--export-dir", help="export base directory (default saved_models/<app>)")
    export.add_argument("--weights", choices=("best", "last"),
                        help="the best validation epoch's or the last (default: the run's "
                        "export_weights)")
    export.add_argument("--quantize", choices=QUANTIZATION_MODES,
                        help="quantize the weights before exporting (default: the run's "
                        "quantize setting)")
    export.set_defaults(handler=_export)

    importable = [name for name in names if applications[name].import_checkpoint]
    if importable:
        imports = commands.add_parser(
            "import", help="a pretrained checkpoint as a run, to export, evaluate or fine-tune")
        imports.add_argument("application", choices=importable)
        imports.add_argument("--from", dest="source", required=True, metavar="DIR", help="; ".join(
            f"{name}: {applications[name].import_from}" for name in importable))
        imports.add_argument("--workdir", help="the new run's directory (default runs/<app>)")
        imports.set_defaults(handler=_import)

    preparable = [name for name in names if applications[name].prepare]
    if preparable:
        prepare = commands.add_parser(
            "prepare", help="write a data set as TFRecord shards that --data reads: for data "
            "larger than memory and workers that split it by shard")
        prepare.add_argument("application", choices=preparable)
        prepare.add_argument("--data", required=True, help="the data directory, any layout "
                             "`train --data` reads")
        prepare.add_argument("--output", required=True, help="the new data directory")
        prepare.add_argument("--shards", type=int, default=8,
                             help="shards per split (default 8; at least as many as workers)")
        prepare.add_argument("--preset", help="size preset whose data settings apply")
        prepare.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                             help="override a config field (repeatable), e.g. max_bad_share")
        prepare.set_defaults(handler=_prepare)

    service = commands.add_parser(
        "data-service", help="run a tf.data service dispatcher or worker, for `train "
        "--data-service`: input pipelines on other machines' CPUs")
    service.add_argument("role", choices=("dispatcher", "worker"))
    service.add_argument("--port", type=int, help="port to serve on (default 5050 for the "
                         "dispatcher, 5051 for a worker)")
    service.add_argument("--workers", metavar="HOST:PORT,...", help="dispatcher: every "
                         "worker's address, as each worker gives it with --address")
    service.add_argument("--work-dir", help="dispatcher: keep its state here, to survive a "
                         "restart")
    service.add_argument("--dispatcher", metavar="grpc://HOST:PORT",
                         help="worker: the dispatcher's address")
    service.add_argument("--address", metavar="HOST:PORT", help="worker: the address the "
                         "dispatcher lists for it (default this host's name and --port)")
    service.set_defaults(handler=_data_service)

    evaluate = commands.add_parser("evaluate", help="score an export on a data split",
                                   add_help=False)
    config_options(evaluate)
    evaluate.add_argument("--model", help="export directory (default saved_models/<app>)")
    evaluate.add_argument("--split", default="test", choices=("train", "val", "test"))
    evaluate.add_argument("--output", help="; ".join(
        f"{name}: {application.evaluate_output}" for name, application in applications.items()))
    evaluate.set_defaults(handler=_evaluate)

    for application in applications.values():
        client = commands.add_parser(application.client.name, help=application.client.help)
        application.client.add_arguments(client)
        client.set_defaults(handler=application.client.run)

    plotted = [name for name in names if applications[name].plot_attention]
    plot = commands.add_parser("plot", help="draw position encodings, training curves or "
                               "what an export attends to")
    plot.add_argument("what", choices=("positions", "curves", "attention"))
    plot.add_argument("application", nargs="?", choices=plotted,
                      help="for attention: the application whose export to ask")
    plot.add_argument("input", nargs="?", help="for attention: " + "; ".join(
        f"{name}: {applications[name].attention_input}" for name in plotted))
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


def _wrong_export_message(error, applications):
    """Names the application whose export was given, and the command that serves it."""
    owner = next((app for app in applications.values() if app.serving_input in error.inputs),
                 None)
    if owner is None:
        return f"{error.path} is not a tfformer export (its serving_default takes {error.inputs})"
    return (f"{error.path} is {with_article(owner.name)} export: serve it with `tfformer "
            f"{owner.client.name}`, evaluate it with `tfformer evaluate {owner.name}`")


def main(argv=None, applications=None):
    """Runs the command line on `argv` (default sys.argv) with `applications` ({name:
    Application}; default every one `discover()` finds). Returns the exit status."""
    parser = build_parser(applications)
    args = parser.parse_args(argv)
    try:
        if hasattr(args, "set") and not _is_checkpoint_directory(
                args.applications[args.application], getattr(args, "init_from", None)):
            _train_config(args)  # a bad setting is named before TensorFlow starts
        import_tensorflow(args.verbose)
        return args.handler(args)
    except ExportFailed as error:
        parser.exit(1, f"tfformer {args.command}: error: {error}\n")
    except WrongExportError as error:
        parser.exit(2, f"tfformer {args.command}: error: "
                    f"{_wrong_export_message(error, args.applications)}\n")
    except (ConfigError, ValueError, FileNotFoundError) as error:
        parser.exit(2, f"tfformer {args.command}: error: {error}\n")
    except TrainingDiverged as error:
        parser.exit(1, f"tfformer {args.command}: {error}\n")
    except KeyboardInterrupt as interrupt:  # Ctrl-C is a normal way to stop: no traceback
        message = str(interrupt) if isinstance(interrupt, TrainingInterrupted) else "interrupted"
        parser.exit(130, f"\ntfformer {args.command}: {message}\n")


if __name__ == "__main__":
    sys.exit(main())
