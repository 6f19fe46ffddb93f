"""The CLI is built from the applications' descriptions: a new one is picked up whole."""

import json
import subprocess
import sys

import pytest

from applications import cli
from applications.common.registry import Application, discover

TOY_ENTRY_POINT = "toy = tests.applications.toy_application:APPLICATION"


def test_every_application_folder_describes_itself():
    found = discover()
    assert list(found) == ["image_classification", "speech_recognition", "translation"]
    for name, application in found.items():
        assert isinstance(application, Application) and application.name == name
        assert application.default_preset in application.presets
        assert application.config_class.__module__ == f"applications.{name}.config"
    clients = {application.client.name for application in found.values()}
    assert clients == {"translate", "classify", "transcribe"}


def test_reading_every_description_starts_no_tensorflow():
    """`tfformer --help` and a bad setting answer before TensorFlow starts."""
    check = ("import sys; from applications.common.registry import discover; discover(); "
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'tensorflow'))")
    loaded = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"


@pytest.fixture
def installed_toy(tmp_path, monkeypatch):
    """The toy application installed as a third-party package would be: a distribution on
    sys.path whose entry point names its description."""
    info = tmp_path / "toy_application-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-application\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[tfformer.applications]\n{TOY_ENTRY_POINT}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_an_installed_application_gets_every_command(installed_toy, capsys):
    assert "toy" in discover()
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "toy: says a word" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["train", "toy", "--preset", "loud", "--help"])
    assert "repeats = 5" in capsys.readouterr().out  # its fields, with the preset's values

    export = installed_toy / "export"
    assert cli.main(["train", "toy", "--preset", "loud", "--set", "word=hi",
                     "--export-dir", str(export), "--strategy", "one_device"]) == 0
    saved = json.loads((export / "export.json").read_text())
    assert saved["said"] == "hi hi hi hi hi" and saved["strategy"] == "one_device"
    assert cli.main(["evaluate", "toy", "--model", str(export), "--split", "val"]) == 0
    assert cli.main(["echo", str(export)]) == 0
    assert capsys.readouterr().out.splitlines() == ["val: 5 words", "hi hi hi hi hi"]


def test_an_application_setting_is_checked_before_anything_runs(installed_toy, capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["train", "toy", "--set", "volume=11"])
    assert exit.value.code == 2 and "volume" in capsys.readouterr().err
    assert not (installed_toy / "export").exists()


def test_two_applications_may_not_share_a_name(installed_toy, tmp_path_factory, monkeypatch):
    twin = tmp_path_factory.mktemp("twin") / "twin-0.1.dist-info"
    twin.mkdir()
    (twin / "METADATA").write_text("Metadata-Version: 2.1\nName: twin\nVersion: 0.1\n")
    (twin / "entry_points.txt").write_text(f"[tfformer.applications]\n{TOY_ENTRY_POINT}\n")
    monkeypatch.syspath_prepend(str(twin.parent))
    with pytest.raises(ValueError, match="two applications are named 'toy'"):
        discover()
