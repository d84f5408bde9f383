"""Benchmarks of sessiond against real servers: ``./dev bench [NAME] [options]``.

Every public module ``bench/<name>.py`` is a benchmark: its docstring's first line describes it
and its ``main(args: Sequence[str]) -> int`` runs it with the command-line arguments that follow
the name. Modules whose names start with an underscore are helpers.
"""
