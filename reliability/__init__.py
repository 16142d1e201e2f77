"""Reliability runs: API fuzzing (make fuzz) and fault injection on the local cloud (make chaos)."""
