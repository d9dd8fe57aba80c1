"""Attestation formats (canonical JSON, RFC 9162 Merkle trees, DSSE, in-toto) and the offline verifier.

Nothing here imports the pipeline, the stores or the journal: an auditor needs only these formats.
"""
