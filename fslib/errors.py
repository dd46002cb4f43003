"""Exceptions that fslib raises for bad input.

The command line prints these as a one-line message without a traceback.
Every message names the parameter, the value it got and how to fix it.
"""

from __future__ import annotations


class FslibError(Exception):
    """Base class of the errors that fslib raises for user input."""


class InvalidInputError(FslibError, ValueError):
    """A parameter has a value, shape or type that fslib cannot use."""


class InvalidFileError(FslibError, ValueError):
    """A file is missing, corrupt or of the wrong kind."""


class UnsafePickleError(InvalidFileError):
    """A pickle asks to build an object outside the allowed numpy types."""
