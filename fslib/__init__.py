"""fslib: frequency shortcuts in image classification.

Computation behind the companion book to Wang, Veldhuis, Brune and
Strisciuglio, *What do neural networks learn in image classification? A
frequency shortcut perspective* (ICCV 2023): Fourier filtering, synthetic
data sets with frequency bias, class-wise spectra, dominant frequency maps,
training with learning-dynamics tracking, and evaluation.
"""

from __future__ import annotations

import logging

from .errors import FslibError, InvalidFileError, InvalidInputError, UnsafePickleError

__version__ = "0.1.0"

__all__ = ["FslibError", "InvalidFileError", "InvalidInputError", "UnsafePickleError", "__version__"]

logging.getLogger(__name__).addHandler(logging.NullHandler())
