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


def test_python_examples_run():
    for block in _blocks("python"):
        namespace = {}
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
        model = namespace.get("model")
        if model is not None:
            ids = np.array([[5, 6, 7, 0, 0], [1, 2, 3, 4, 5]])
            assert tuple(model(ids).shape) == (2, 3)
            # Padding is masked all the way through: more of it changes nothing.
            np.testing.assert_allclose(model(ids[:1]), model(ids[:1, :3]), atol=1e-5)
