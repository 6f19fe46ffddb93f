"""An export or run of one application given to another application's commands: every
command names what it was given and the command that takes it, before any work."""

import pytest

from applications import cli
from applications.common.registry import discover
from applications.common.run_directory import with_article


def assert_other_applications_name_it(root, application, capsys, tmp_path):
    """`root/export` and `root/run` belong to `application`; `evaluate`, `plot attention`
    and `export` of every other application refuse them, naming `application`."""
    export_dir, workdir = str(root / "export"), str(root / "run")
    kind = with_article(application)
    for other, description in discover().items():
        if other == application:
            continue
        commands = [["evaluate", other, "--model", export_dir]]
        if description.plot_attention:
            commands.append(["plot", "attention", other, "an input", "--model", export_dir,
                             "--output", str(tmp_path / "plot.png")])
        for command in commands:
            with pytest.raises(SystemExit) as exit_info:
                cli.main(command)
            assert exit_info.value.code == 2, command
            error = capsys.readouterr().err
            assert f"is {kind} export: serve it with `tfformer " in error, (command, error)
            assert f"evaluate it with `tfformer evaluate {application}`" in error
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["export", other, "--workdir", workdir, "--export-dir",
                      str(tmp_path / "never")])
        assert exit_info.value.code == 2
        error = capsys.readouterr().err
        assert (f"{workdir} holds {kind} run, not {with_article(other)} one: name its "
                f"application, as in `tfformer export {application} --workdir {workdir}`"
                ) in error, error
        assert not (tmp_path / "never").exists()
