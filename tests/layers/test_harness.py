"""Every check of the shared harness, applied to every public layer."""

import pytest

from tests.layers.cases import CASES
from tests.layers.harness import CHECKS, run_check
from tfformer import layers


def test_every_public_layer_has_a_case():
    covered = {case.layer_class.__name__ for case in CASES}
    public = {name for name in layers.__all__ if name[0].isupper() and name != "AttentionScore"}
    assert public <= covered, f"layers without a harness case: {sorted(public - covered)}"


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_layer(case, check, tmp_path):
    run_check(case, check, str(tmp_path))
