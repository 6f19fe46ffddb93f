"""Application configs: dataclasses, named presets and `--set key=value` overrides."""

import dataclasses
import inspect
import json
import math
import re
import types
import typing


class ConfigError(ValueError):
    """A config override names an unknown field or a value of the wrong type."""


# ---- what a field may hold: (test, description) pairs, named in each config's LIMITS ----------

def at_least(low):
    return (lambda value: value >= low), f"at least {low}"


def above(low):
    return (lambda value: value > low), f"above {low}"


def fraction(high_included=False):
    """[0, 1), or [0, 1] with `high_included`."""
    if high_included:
        return (lambda value: 0 <= value <= 1), "between 0 and 1"
    return (lambda value: 0 <= value < 1), "at least 0 and below 1"


def one_of(*options):
    return (lambda value: value in options), "one of " + ", ".join(map(repr, options))


ODD = (lambda value: value % 2 == 1), "odd"


def _type_problem(value, field_type):
    """Why `value` does not fit the annotation `field_type`, or None."""
    origin = typing.get_origin(field_type)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(field_type):
            return None
        field_type = next(t for t in typing.get_args(field_type) if t is not type(None))
        origin = typing.get_origin(field_type)
    if origin is tuple:
        (item_type, _) = typing.get_args(field_type)
        if not isinstance(value, (tuple, list)):
            return f"expects a list of {item_type.__name__}"
        problems = [_type_problem(item, item_type) for item in value]
        return f"expects a list of {item_type.__name__}" if any(problems) else None
    if field_type is bool:
        return None if isinstance(value, bool) else "expects true or false"
    if field_type is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "expects an int"
    if field_type is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
            value)
        return None if ok else "expects a finite number"
    if field_type is str:
        return None if isinstance(value, str) and value else "expects a non-empty string"
    return None


def check_config(config):
    """Checks every field of an application config against its type and its class's
    `LIMITS` ({field: (test, description) or a list of them}) and `RULES` ([(test(config),
    message)]); raises ConfigError naming the first field that fails. Configs call it on
    construction, so a bad value fails before any data or model work."""
    hints = typing.get_type_hints(type(config))
    limits = getattr(type(config), "LIMITS", {})
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        problem = _type_problem(value, hints[field.name])
        if problem:
            raise ConfigError(f"{field.name}={value!r}: {field.name} {problem}")
        if value is None:
            continue
        checks = limits.get(field.name, [])
        for test, description in [checks] if isinstance(checks, tuple) else checks:
            items = value if isinstance(value, (tuple, list)) else [value]
            if not all(test(item) for item in items):
                raise ConfigError(f"{field.name}={value!r}: {field.name} must be {description}")
    if hasattr(config, "d_model") and hasattr(config, "num_heads") and (
            config.d_model % config.num_heads):
        raise ConfigError(f"d_model={config.d_model} is not divisible by "
                          f"num_heads={config.num_heads}")
    for test, message in getattr(type(config), "RULES", ()):
        if not test(config):
            raise ConfigError(message.format(config=config))


def _parse_value(name, text, field_type):
    origin = typing.get_origin(field_type)
    if origin in (typing.Union, types.UnionType):  # Optional[X] or X | None
        options = [t for t in typing.get_args(field_type) if t is not type(None)]
        if text.lower() in ("none", "null"):
            return None
        field_type = options[0]
    if field_type is bool:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} expects a boolean (true/false), got {text!r}")
    if field_type in (int, float):
        try:
            return field_type(text)
        except ValueError:
            raise ConfigError(f"{name} expects {field_type.__name__}, got {text!r}") from None
    if field_type is str:
        return text
    if typing.get_origin(field_type) in (tuple, list) or field_type in (tuple, list):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise ConfigError(f"{name} expects a JSON list such as [1, 2], got {text!r}") from None
        if not isinstance(value, list):
            raise ConfigError(f"{name} expects a JSON list such as [1, 2], got {text!r}")
        return tuple(value)
    raise ConfigError(f"{name} cannot be set from the command line")


def apply_overrides(config, overrides):
    """Returns a copy of dataclass `config` with `key=value` strings applied."""
    hints = typing.get_type_hints(type(config))
    fields = {field.name for field in dataclasses.fields(config)}
    changes = {}
    for item in overrides or ():
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, text = item.split("=", 1)
        key = key.strip()
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"unknown config key {key!r}; known keys: {known}")
        changes[key] = _parse_value(key, text.strip(), hints[key])
    return dataclasses.replace(config, **changes)


def from_preset(config_class, presets, name):
    if name not in presets:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(presets)}")
    return config_class(**presets[name])


def to_json(config):
    return json.dumps(dataclasses.asdict(config), indent=2, sort_keys=True)


# Meanings of the fields every application has; the others are documented by the comments in
# their config class (read by `field_help`).
COMMON_HELP = {
    "builtin_examples": "examples generated for the built-in data (without --data)",
    "val_fraction": "share of training held out for validation when there is no val split",
    "num_layers": "Transformer layers (per stack)", "d_model": "model width D",
    "num_heads": "attention heads (must divide d_model)",
    "intermediate_dim": "feed-forward inner width", "dropout": "dropout rate",
    "batch_size": "global batch size, split over the replicas",
    "epochs": "training epochs", "seed": "random seed (data order, initialisation, dropout)",
    "steps_per_epoch": "batches per epoch of an endless reshuffled stream (none: one pass)",
    "learning_rate": "peak learning rate", "weight_decay": "AdamW weight decay",
    "warmup_fraction": "share of the steps with a linear learning-rate warm-up",
    "label_smoothing": "label smoothing of the cross-entropy",
    "beam_size": "beam width of the served decoding (1: greedy)",
    "shuffle_buffer": "tf.data shuffle buffer size",
}


def field_help(config_class):
    """{field: one-line meaning}, from the comment after a field or the comment block above
    it in the class's source (a one-line section title such as `# Model` does not count),
    else `COMMON_HELP`."""
    meanings, block = {}, []
    for line in inspect.getsource(config_class).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            block.append(stripped.lstrip("# "))
            continue
        match = re.match(r"(\w+): [^=]+=[^#]*(?:#\s*(.*))?$", stripped)
        if match and match[1] in {f.name for f in dataclasses.fields(config_class)}:
            titled = len(block) == 1 and not block[0].endswith(".")
            text = match[2] or ("" if titled else " ".join(block))
            text = text.split(". ")[0].rstrip(".")  # its first sentence
            meanings[match[1]] = text or COMMON_HELP.get(match[1], "")
        block = []
    return meanings


def describe_fields(config):
    """Lines `name = default  meaning` for every field of `config` (a preset's values)."""
    meanings = field_help(type(config))
    rows = [(field.name, json.dumps(getattr(config, field.name)))
            for field in dataclasses.fields(config)]
    width = max(len(name) + len(value) for name, value in rows) + 3
    return [f"  {name} = {value}".ljust(width + 2) + f"  {meanings.get(name, '')}".rstrip()
            for name, value in rows]
