"""Dominant frequency maps (DFMs): files, search and shortcut evaluation."""
