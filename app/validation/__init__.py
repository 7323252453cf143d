"""Operational qualification of a live install (`homeward validate`, VAL-1, ADR 0025)."""
