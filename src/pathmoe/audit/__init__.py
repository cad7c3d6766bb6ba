"""Reproducibility audits: provenance records beside every artifact, verification, cluster gather.

`record_provenance` / `pathmoe audit record` write `<output>.prov.json`; `verify_dir` /
`pathmoe audit verify` check them (and re-execute deterministic jobs); `gather` /
`pathmoe audit gather` audits many run directories together. See docs/audit.md.
"""

from pathmoe.audit.gather import gather
from pathmoe.audit.hashing import config_hash, hash_path
from pathmoe.audit.provenance import load_record, record_path, record_provenance, run_and_record
from pathmoe.audit.verify import ArtifactResult, verify_dir

__all__ = ["record_provenance", "run_and_record", "record_path", "load_record", "verify_dir", "ArtifactResult",
           "gather", "hash_path", "config_hash"]
