"""Training, evaluation, export and benchmarking tools for the colorcore model zoo (imports colorcore)."""
