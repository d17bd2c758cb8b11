"""The paper benchmark's parts; bench/paper_benchmark.py is its command."""
