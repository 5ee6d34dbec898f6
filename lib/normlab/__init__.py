"""normlab: a course on normalization in deep learning, and the library its notebooks import.

Modules: `functional` (NumPy layers), `nn` (PyTorch modules from scratch), `symbolic`
(SymPy derivations), `gradcheck`, `data`, `models`, `train`, and the `normlab` command.
"""

__version__ = "0.1.0"
