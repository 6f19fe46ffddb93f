"""What an application tells the `tfformer` command line about itself.

Each application package defines `APPLICATION = Application(...)` in its
`application.py`; the CLI finds every subpackage of `applications` that has
one, and any installed package that names one under the entry-point group
`tfformer.applications`, and builds its commands from them. Adding an
application touches only its own folder.

`application.py` stays light to import: the CLI reads every description
before TensorFlow starts (for `--help` and to check settings), so its
callables import their modules when called (`deferred`).
"""

import dataclasses
import importlib
import importlib.util
import pkgutil
from importlib import metadata
from typing import Callable, Optional

ENTRY_POINT_GROUP = "tfformer.applications"


@dataclasses.dataclass(frozen=True)
class ClientCommand:
    """A command that calls the application's export, e.g. `tfformer translate`.

    `add_arguments(parser)` declares its arguments; `run(args)` serves them
    and prints the outputs, returning the exit status.
    """

    name: str
    help: str
    add_arguments: Callable
    run: Callable


@dataclasses.dataclass(frozen=True)
class Application:
    """One application, as the CLI sees it.

    Attributes:
        name: the command-line name (`tfformer train NAME`).
        summary: one line for `tfformer --help`.
        config_class: its frozen dataclass config.
        presets: {preset name: {field: value}}.
        train: `train(config, data_dir, workdir, export_dir, strategy,
            mixed_precision, jit_compile, resume)`: trains and exports.
        evaluate: `evaluate(model_dir, data_dir, config, split, output)`
            -> {"summary": str, ...}, scoring an export.
        load: `load(workdir, weights, quantize)` -> the trained model of a
            run, with `export(base_dir)` and `weights`.
        serving_input: the input name of its export's `serving_default`.
        client: the command that serves its exports from the shell.
        evaluate_output: what `evaluate --output` writes.
        plot_attention: None, or `plot_attention(signature, input, path,
            layer, head)`: asks an export's `attention` signature about one
            input, draws what it answers to `path` and prints a line.
        attention_input: what `plot attention NAME INPUT` takes.
        default_preset: the preset used when none is named.
        import_checkpoint: None, or `import_checkpoint(directory, workdir)` -> a summary
            line: writes a pretrained checkpoint's directory as a run in `workdir`
            (`tfformer import NAME`), which export, evaluate and fine-tuning then use.
        import_from: what `tfformer import NAME --from` reads.
        prepare: None, or `prepare(data_dir, output, config, num_shards)` -> a summary
            line: writes a data set as TFRecord shards that `--data` reads
            (`tfformer prepare NAME`; see `applications.common.shards`).
        architecture: the config fields a run's weights fix; `train --init-from RUN` takes
            them from RUN and starts from its weights (empty: not supported). `train` then
            takes `init_from=RUN`.
    """

    name: str
    summary: str
    config_class: type
    presets: dict
    train: Callable
    evaluate: Callable
    load: Callable
    serving_input: str
    client: ClientCommand
    evaluate_output: str
    plot_attention: Optional[Callable] = None
    attention_input: str = ""
    default_preset: str = "tiny"
    import_checkpoint: Optional[Callable] = None
    import_from: str = ""
    prepare: Optional[Callable] = None
    architecture: tuple = ()

    @classmethod
    def in_package(cls, package, **fields):
        """An application laid out as the bundled ones are: `train.train`,
        `evaluate.evaluate` and `restore.load` in `package`, imported when called."""
        return cls(train=deferred(f"{package}.train", "train"),
                   evaluate=deferred(f"{package}.evaluate", "evaluate"),
                   load=deferred(f"{package}.restore", "load"), **fields)


def deferred(module_name, function_name):
    """`module_name.function_name`, imported when first called, so a description does
    not import TensorFlow."""

    def call(*args, **kwargs):
        return getattr(importlib.import_module(module_name), function_name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = function_name
    call.__doc__ = f"`{module_name}.{function_name}`, imported when first called."
    return call


def discover(package="applications", group=ENTRY_POINT_GROUP):
    """{name: Application}: every subpackage of `package` with an `application`
    module, then every entry point of `group`, sorted by name."""
    found = []
    root = importlib.import_module(package)
    for module in pkgutil.iter_modules(root.__path__):
        if module.ispkg and importlib.util.find_spec(f"{package}.{module.name}.application"):
            found.append(importlib.import_module(f"{package}.{module.name}.application")
                         .APPLICATION)
    for entry_point in metadata.entry_points(group=group):
        found.append(entry_point.load())
    applications = {}
    for application in found:
        if not isinstance(application, Application):
            raise TypeError(f"{application!r} is not an applications.common.Application")
        if application.name in applications:
            raise ValueError(f"two applications are named {application.name!r}")
        applications[application.name] = application
    return dict(sorted(applications.items()))
