# cython: language_level=3
"""Thin Cython layer over the C engine in cext/ (placeholder until the engine lands)."""
from ._nep cimport nep_strerror, nep_openmp_enabled, nep_max_threads

def openmp_enabled():
    return bool(nep_openmp_enabled())

def max_threads():
    return nep_max_threads()

def strerror(int status):
    return nep_strerror(status).decode()

# Training entry points (nep_train.h) live in their own include file.
include "_train.pxi"
