"""Reliability suite: crashes, random kills, faults, hostile input, concurrency and secrets."""
