"""Attestation formats (canonical JSON, RFC 9162 Merkle trees, DSSE, in-toto) and the offline verifier.

Nothing here imports the pipeline, the journal, the runner, the config, the retry policy or the store
registry and adapters: an auditor needs only these formats. The live check (``live.py``) reads through
the stores' protocol types (``stores.base``) with the stores the caller hands it; the log's storage
back-ends are in ``migrator/logstore.py``. tests/unit/test_verify.py enforces this.
"""
