from normlab import functional as F
from normlab.notebook import show_source


def test_show_source_displays_the_library_code_with_or_without_docstring():
    full = show_source(F.batchnorm_forward).data
    assert full.startswith("```python\ndef batchnorm_forward(") and "Training-mode batch norm" in full
    short = show_source(F.batchnorm_forward, docstring=False).data
    assert "Training-mode batch norm" not in short and "_check_channel_params(x, gamma, beta)" in short
