"""Content fingerprints that decide whether a data step's existing output can be reused."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def fingerprint(obj: Any) -> str:
    """sha256 of the canonical JSON of `obj`: equal configs give equal fingerprints."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
