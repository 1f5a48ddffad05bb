"""The tiny sweep spec shared by the sweep, CLI and parallel tests (110 points, 30 per chunk)."""

TINY_SPEC = """
description = "tiny test sweep"
ensemble = "canonical"
outputs = ["Mz", "f", "n_minima", "status"]
chunk_size = 30

[grid]
h = { start = 0.0, stop = 3.0, num = 11 }
K = { start = 0.0, stop = 1.2, num = 5 }
T = [0.5, 1.5]
"""
