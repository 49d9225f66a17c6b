"""Robustness audit of NEP / NEP-ZBL models: dimer scans, data distances, hot-MD stress test.

See ``docs/audit.md``. The main entry point is :func:`audit`; the command is ``nepzbl audit``.
"""

from .dimer import DimerCurve, analyse_curve, dimer_scan, read_dimer_file, scan_pairs
from .verdict import AuditReport, audit, make_calculator

__all__ = [
    "audit",
    "AuditReport",
    "DimerCurve",
    "analyse_curve",
    "dimer_scan",
    "scan_pairs",
    "read_dimer_file",
    "make_calculator",
]
