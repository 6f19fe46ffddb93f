"""README's promises: its two commands and its Python examples."""

import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_opens_with_the_two_commands():
    setup, tests = _blocks("bash")[:2]
    assert "pip install" in setup and "tfformer train translation" in setup
    ci = (README.parent / ".ci" / "run").read_text()
    assert tests.strip() in ci.splitlines(), "CI must run README's test command exactly"


BERT_BLOCK = 'BERT_DIRECTORY = "bert-base-uncased"'


def test_python_examples_run():
    for block in _blocks("python"):
        if block.startswith(BERT_BLOCK):
            continue  # needs a checkpoint: the next test runs it on the tiny one
        namespace = {}
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
        model = namespace.get("model")
        if model is not None:
            ids = np.array([[5, 6, 7, 0, 0], [1, 2, 3, 4, 5]])
            assert tuple(model(ids).shape) == (2, 3)
            # Padding is masked all the way through: more of it changes nothing.
            np.testing.assert_allclose(model(ids[:1]), model(ids[:1, :3]), atol=1e-5)


def test_the_bert_classifier_example_fine_tunes_the_tiny_checkpoint():
    (block,) = [block for block in _blocks("python") if block.startswith(BERT_BLOCK)]
    fixture = README.parent / "tests" / "fixtures" / "pretrained" / "bert"
    namespace = {}
    exec(compile(block.replace(BERT_BLOCK, f"BERT_DIRECTORY = {str(fixture)!r}"),  # noqa: S102
                 str(README), "exec"), namespace)
    losses = namespace["history"].history["loss"]
    assert len(losses) == 2 and all(np.isfinite(losses))
    logits = namespace["classifier"](namespace["tokenizer"](["a happy dog"]))
    assert tuple(logits.shape) == (1, 2)


def test_the_sample_inputs_line_writes_an_image_and_a_clip_the_exports_read(tmp_path):
    """README's serving examples read star.png and clip.wav; its line that makes them runs."""
    import subprocess
    import sys

    import tensorflow as tf

    from tfformer.wav import decode_wav

    (line,) = {line.split("#")[0].strip() for block in _blocks("bash")
               for line in block.splitlines() if "applications.sample_inputs" in line}
    command = line.replace(".venv/bin/python", sys.executable).split()
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={"PYTHONPATH": str(README.parent), "TF_CPP_MIN_LOG_LEVEL": "2",
                                 "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    image = tf.io.decode_png(tf.io.read_file(str(tmp_path / "star.png")))
    assert tuple(image.shape) == (64, 64, 3)
    waveform, rate = decode_wav(tf.io.read_file(str(tmp_path / "clip.wav")))
    assert int(rate) == 8000 and 0.3 < waveform.shape[0] / 8000 < 2.0
