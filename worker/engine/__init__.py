"""Built-in alignstats-compatible engine (`alignbatch-alignstats`): byte-identical v0.11 reports from
pysam/HTSlib + numpy + numba. See docs/engine.md."""
