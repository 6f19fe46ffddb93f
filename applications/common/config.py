"""Application configs: dataclasses, named presets and `--set key=value` overrides."""

import dataclasses
import json
import types
import typing


class ConfigError(ValueError):
    """A config override names an unknown field or a value of the wrong type."""


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
    changes = {}
    for item in overrides or ():
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, text = item.split("=", 1)
        key = key.strip()
        if key not in hints:
            known = ", ".join(sorted(hints))
            raise ConfigError(f"unknown config key {key!r}; known keys: {known}")
        changes[key] = _parse_value(key, text.strip(), hints[key])
    return dataclasses.replace(config, **changes)


def from_preset(config_class, presets, name):
    if name not in presets:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(presets)}")
    return config_class(**presets[name])


def to_json(config):
    return json.dumps(dataclasses.asdict(config), indent=2, sort_keys=True)
