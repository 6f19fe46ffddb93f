import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from applications.common.callbacks import StopOnNonFiniteLoss
from applications.common.precision import precision_policy
from applications.common.run_options import TrainingDiverged


def test_a_non_finite_loss_stops_training_naming_the_step():
    x = np.ones((32, 4), "float32")
    y = np.ones((32, 1), "float32")
    y[20] = np.nan  # the sixth batch of four
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 6 \(epoch 1, batch 6\)"):
        model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0,
                  callbacks=[StopOnNonFiniteLoss()])


def test_precision_policy_is_scoped_and_checked():
    before = keras.config.dtype_policy().name
    with precision_policy("bf16"):
        assert keras.layers.Dense(2).compute_dtype == "bfloat16"
    assert keras.config.dtype_policy().name == before
    with pytest.raises(ValueError, match="mixed_precision must be one of"):
        with precision_policy("fp8"):
            pass


# XLA with bfloat16, the accelerators' pair, in the default run; float16's loss scaling
# without XLA (its compile adds about 10 s), and with it under -m slow.
@pytest.mark.parametrize("mixed_precision, jit_compile", [
    ("bf16", True), ("fp16", False), pytest.param("fp16", True, marks=pytest.mark.slow)])
def test_translation_trains_in_mixed_precision(tmp_path, mixed_precision, jit_compile):
    from applications.translation.config import PRESETS, TranslationConfig
    from applications.translation.train import train

    # Lengths of at most 8 tokens: one padded shape, so XLA compiles each step once.
    config = dataclasses.replace(
        TranslationConfig(**PRESETS["tiny"]), builtin_examples=600, vocabulary_size=80,
        num_layers=1, d_model=32, num_heads=2, intermediate_dim=64, epochs=1, steps_per_epoch=6,
        batch_size=16, max_target_length=7, max_source_length=8, beam_size=2)
    result = train(config, workdir=str(tmp_path / "run"), export_dir=str(tmp_path / "export"),
                   verbose=0, examples=0, mixed_precision=mixed_precision,
                   jit_compile=jit_compile)
    assert np.isfinite(result["history"]["loss"][0])
    expected = {"bf16": "bfloat16", "fp16": "float16"}[mixed_precision]
    assert result["model"].encoder.compute_dtype == expected
    assert all(w.dtype == "float32" for w in result["model"].weights)
    if mixed_precision == "fp16":
        assert isinstance(result["model"].optimizer, keras.optimizers.LossScaleOptimizer)
    translations = result["server"].serve(np.array(["twenty-one", ""]))["translation"]
    assert translations.shape == (2,) and translations[1] == b""


# bfloat16 over two replicas in the default run: one training covers both (about 75 s
# each). XLA, float16 loss scaling, and each alone run with -m slow; XLA and float16 are
# tested on translation in the default run.
@pytest.mark.parametrize("mixed_precision, jit_compile, strategy", [
    ("bf16", False, "mirrored"),
    pytest.param("bf16", False, "one_device", marks=pytest.mark.slow),
    pytest.param("none", False, "mirrored", marks=pytest.mark.slow),
    pytest.param("bf16", True, "one_device", marks=pytest.mark.slow),
    pytest.param("fp16", False, "one_device", marks=pytest.mark.slow)])
def test_speech_recognition_trains_in_mixed_precision_and_mirrored(
        tmp_path, mixed_precision, jit_compile, strategy):
    from applications.speech_recognition.config import PRESETS, SpeechRecognitionConfig
    from applications.speech_recognition.evaluate import wav_bytes
    from applications.speech_recognition.train import train
    from tests.layers.harness import two_cpu_strategy

    config = dataclasses.replace(
        SpeechRecognitionConfig(**PRESETS["tiny"]), builtin_examples=200, num_layers=1,
        d_model=32, num_heads=2, intermediate_dim=64, epochs=1, steps_per_epoch=4,
        batch_size=16)
    result = train(config, workdir=str(tmp_path / "run"), export_dir=str(tmp_path / "export"),
                   verbose=0, examples=0, mixed_precision=mixed_precision,
                   jit_compile=jit_compile,
                   strategy=two_cpu_strategy() if strategy == "mirrored" else strategy)
    assert np.isfinite(result["history"]["loss"][0])
    expected = {"bf16": "bfloat16", "fp16": "float16", "none": "float32"}[mixed_precision]
    assert result["model"].encoder.compute_dtype == expected
    assert all(w.dtype == "float32" for w in result["model"].weights if w.dtype != "int64")
    clip = wav_bytes(np.zeros(800, np.float32), config.sample_rate)
    assert result["server"].serve(tf.constant([clip]))["transcript"].numpy().tolist() == [b""]
    # The model streams in its precision too.
    from applications.speech_recognition.live_stream import STATE_NAMES

    server = result["server"]
    state = server.stream_start(tf.constant([config.sample_rate]))
    waves = tf.constant(np.zeros((1, 3000), np.float32))
    outputs = server.stream_step(waves, tf.constant([True]), *[state[n] for n in STATE_NAMES])
    assert outputs["transcript"].numpy().tolist() == [b""]


def test_progress_lines_for_logs_that_are_not_a_terminal(capsys):
    from applications.common.callbacks import ProgressLines

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.ones((80, 4)), np.ones((80, 1)), batch_size=2, epochs=2, verbose=0,
              callbacks=[ProgressLines(epochs=2, steps_per_epoch=40)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "training: 2 epochs of 40 steps; a line every 4 steps"
    assert len(lines) == 1 + 2 * 9  # steps 4, 8, ..., 36 of each epoch (its end has Keras')
    assert lines[1].startswith("epoch 1/2, step 4/40: loss ")
    assert lines[-1].startswith("epoch 2/2, step 36/40: loss ") and "steps/s" in lines[-1]


def test_best_weights_survive_a_resumption_and_are_the_ones_exported(tmp_path, capsys):
    from applications.common.callbacks import BestWeights, use_export_weights

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    kept = BestWeights(str(tmp_path / "checkpoints"))
    kept.set_model(model)
    snapshots = {}
    for epoch, val_loss in enumerate([1.0, 2.0]):
        model.layers[0].kernel.assign(np.full((2, 1), float(epoch), "float32"))
        snapshots[epoch] = model.get_weights()
        kept.on_epoch_end(epoch, {"val_loss": val_loss})
    assert kept.best() == {"epoch": 1, "monitor": "val_loss", "value": 1.0}
    resumed = BestWeights(str(tmp_path / "checkpoints"))  # a new process: Keras' would forget
    resumed.set_model(model)
    model.layers[0].kernel.assign(np.full((2, 1), 7.0, "float32"))
    resumed.on_epoch_end(2, {"val_loss": 1.5})
    assert resumed.best()["epoch"] == 1  # 1.5 is not better than epoch 1's 1.0
    resumed.on_epoch_end(3, {"val_loss": float("nan")})
    assert resumed.best()["epoch"] == 1
    use_export_weights(model, str(tmp_path), "best")
    for loaded, expected in zip(model.get_weights(), snapshots[0]):
        np.testing.assert_array_equal(loaded, expected)
    assert "exporting the weights of epoch 1, the best by val_loss (1.0000)" in (
        capsys.readouterr().out)
    assert not list((tmp_path / "checkpoints").glob("*tmp*"))  # written, then renamed
