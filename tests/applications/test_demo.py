from applications.common import cli
from applications.demo.train import DemoConfig, make_reversal_data, train


def test_reversal_data_targets_are_reversed_sources():
    config = DemoConfig()
    source, target_in, target_out = make_reversal_data(config, 20, seed=3)
    for src, tin, tout in zip(source, target_in, target_out):
        n = int((src != 0).sum())
        assert list(tout[:n]) == list(src[:n][::-1])
        assert tout[n] == 2 and tin[0] == 1
        assert list(tin[1:n + 1]) == list(tout[:n])


def test_demo_loss_falls():
    result = train(DemoConfig(epochs=2, steps_per_epoch=15, batch_size=32))
    assert result["losses"][-1] < result["losses"][0]


def test_cli_demo_exit_code_reports_success(capsys):
    assert cli.main(["demo", "--epochs", "2", "--steps-per-epoch", "10"]) == 0
    assert "loss fell from" in capsys.readouterr().out
