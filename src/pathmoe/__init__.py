"""pathmoe: reproduce "Path-Constrained Mixture-of-Experts" end to end.

Stages live in sub-packages (model, data, train, eval, analysis, report, audit) and data flows one
way between them; see docs/ARCHITECTURE.md for the contracts.
"""

__version__ = "0.1.0"
