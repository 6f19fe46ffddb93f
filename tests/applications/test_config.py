import dataclasses

import pytest

from applications.common.config import ConfigError, apply_overrides, from_preset


@dataclasses.dataclass(frozen=True)
class Example:
    layers: int = 2
    rate: float = 0.1
    name: str = "x"
    tied: bool = True
    steps: int | None = None


def test_overrides_are_typed():
    config = apply_overrides(Example(), ["layers=4", "rate=0.5", "name=y", "tied=false",
                                         "steps=10"])
    assert config == Example(layers=4, rate=0.5, name="y", tied=False, steps=10)
    assert apply_overrides(config, ["steps=none"]).steps is None


@pytest.mark.parametrize("override, message", [
    ("depth=3", "unknown config key 'depth'"),
    ("layers=two", "layers expects int, got 'two'"),
    ("tied=maybe", "tied expects a boolean"),
    ("layers", "key=value"),
])
def test_bad_overrides_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(Example(), [override])


def test_unknown_preset_is_named():
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        from_preset(Example, {"tiny": {}}, "huge")
