import dataclasses
import json

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


@pytest.mark.parametrize("application, override, message", [
    ("translation", "batch_size=0", "batch_size=0: batch_size must be at least 1"),
    ("translation", "beam_size=0", "beam_size must be at least 1"),
    ("translation", "epochs=0", "epochs must be at least 1"),
    ("translation", "dropout=1", "dropout must be at least 0 and below 1"),
    ("translation", "d_model=130", "d_model=130 is not divisible by num_heads=4"),
    ("translation", "tokenizer_model_type=words", "one of 'unigram', 'bpe', 'char', 'word'"),
    ("translation", "source_language=fr", "the built-in data is English to German"),
    ("image_classification", "patch_size=5", "image_size=32 is not a multiple of patch_size=5"),
    ("image_classification", "pooling=max", "pooling must be one of 'class_token', 'mean'"),
    ("image_classification", "steps_per_epoch=0", "steps_per_epoch must be at least 1"),
    ("speech_recognition", 'speed_perturbation=["a"]', "speed_perturbation expects a list of "
                                                        "float"),
    ("speech_recognition", "speed_perturbation=[0.9, -1]", "speed_perturbation must be above 0"),
    ("speech_recognition", "convolution_kernel_size=4", "convolution_kernel_size must be odd"),
    ("speech_recognition", "window_right=-1", "window_right must be at least 0"),
    ("speech_recognition", "learning_rate=nan", "learning_rate expects a finite number"),
    ("speech_recognition", "holdout_speaker=theo", "picks an FSDD speaker, but the data is the "
                                                   "built-in DTMF clips"),
])
def test_bad_settings_fail_before_any_data_or_model_work(application, override, message,
                                                         tmp_path, capsys):
    from applications import cli

    run = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", application, "--set", override, "--workdir", str(run),
                  "--export-dir", str(tmp_path / "export")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (run / "config.json").exists() and not (tmp_path / "export").exists()


def test_every_preset_is_a_valid_config():
    import importlib

    for application in ("translation", "image_classification", "speech_recognition"):
        module = importlib.import_module(f"applications.{application}.config")
        config_class = next(value for name, value in vars(module).items()
                            if name.endswith("Config") and isinstance(value, type))
        for preset in module.PRESETS:
            from_preset(config_class, module.PRESETS, preset)  # raises if a value is out of range


@pytest.mark.parametrize("application", ["translation", "image_classification",
                                         "speech_recognition"])
def test_train_help_lists_every_field_with_its_default_and_meaning(application, capsys):
    import dataclasses as dc
    import importlib

    from applications import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", application, "--help"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    module = importlib.import_module(f"applications.{application}.config")
    config_class = next(v for k, v in vars(module).items() if k.endswith("Config"))
    tiny = from_preset(config_class, module.PRESETS, "tiny")
    for field in dc.fields(config_class):
        (line,) = [row for row in printed.splitlines()
                   if row.strip().startswith(f"{field.name} = ")]
        shown = line.split(" = ", 1)[1]
        value = json.dumps(getattr(tiny, field.name))  # the preset's value, as JSON
        assert shown.startswith(value), line
        assert shown[len(value):].strip(), f"{field.name} has no meaning in --help"
