import numpy as np
import pytest

from normlab import functional as F
from normlab.notebook import ClaimError, claim, prose, show_source


def test_show_source_displays_the_library_code_with_or_without_docstring():
    full = show_source(F.batchnorm_forward).data
    assert full.startswith("```python\ndef batchnorm_forward(") and "Training-mode batch norm" in full
    short = show_source(F.batchnorm_forward, docstring=False).data
    assert "Training-mode batch norm" not in short and "_check_channel_params(x, gamma, beta)" in short


def test_prose_renders_the_computed_numbers_as_markdown():
    error_2, error_64 = 0.3712, 0.0521
    text = prose(f"""
        BN's error at batch 2 is {100 * error_2:.1f} %,
        against {100 * error_64:.1f} % at 64.
    """).data
    assert text == "BN's error at batch 2 is 37.1 %,\nagainst 5.2 % at 64."


def test_claim_passes_silently_when_it_holds_and_names_claim_and_values_when_not():
    assert claim("BN's error grows at small batches", 0.37 > 3 * 0.05, error_2=0.37, error_64=0.05) is None
    with pytest.raises(ClaimError) as failure:
        claim("BN's error is five times larger at batch 2", 0.109 > 5 * 0.05, error_2=0.109, error_64=0.05,
              seeds=[0, 1, 2])
    message = str(failure.value)
    assert "BN's error is five times larger at batch 2" in message
    assert "error_2 = 0.109" in message and "error_64 = 0.05" in message and "seeds = [0, 1, 2]" in message
    # a claim is an assertion: pytest and the notebooks see an AssertionError
    assert isinstance(failure.value, AssertionError)


def test_claim_refuses_a_check_that_is_not_a_bool():
    with pytest.raises(TypeError, match="holds must be a bool"):
        claim("BN wins", np.array([1.0, 2.0]) > 1)
    claim("numpy booleans count", np.float64(2.0) > 1)
