"""The client commands answer a user's slips at once: a missing input file is named before the
export loads (seconds), a second file given to `--stream` is called the extra one, and
`translate` says that it reads standard input rather than that text is required."""

import pytest

from applications import cli


@pytest.mark.parametrize("command", [
    ["classify", "{missing_export}", "{missing}.png"],
    ["transcribe", "{missing_export}", "{missing}.wav"],
])
def test_a_missing_input_file_is_named_before_the_export_loads(command, tmp_path, capsys):
    values = {"missing_export": str(tmp_path / "no_export"), "missing": str(tmp_path / "gone")}
    assert cli.main([part.format(**values) for part in command]) == 1
    error = capsys.readouterr().err
    assert f"{values['missing']}." in error and "No such file or directory" in error
    assert "no_export" not in error  # the export was never opened


def test_streaming_a_missing_file_is_named_before_the_export_loads(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["transcribe", "--stream", str(tmp_path / "gone.wav"),
                  str(tmp_path / "no_export")])
    error = capsys.readouterr().err
    assert f"{tmp_path / 'gone.wav'}: No such file or directory" in error
    assert "no_export" not in error


def test_two_streamed_files_name_the_second_not_the_export(capsys):
    with pytest.raises(SystemExit):
        cli.main(["transcribe", "--stream", "a.wav", "b.wav", "saved_models/speech"])
    error = capsys.readouterr().err
    assert "--stream streams one source (a.wav)" in error
    assert "b.wav saved_models/speech were given" in error


def test_translate_without_text_does_not_call_text_required(capsys):
    with pytest.raises(SystemExit):
        cli.main(["translate"])
    error = capsys.readouterr().err
    assert "required: model" in error and "text" not in error.splitlines()[-1]
