"""Chaos scenarios against real processes on 127.0.0.1: ``./dev chaos [--only NAME ...]``.

Every public module ``chaos/<name>.py`` is a scenario: its docstring's first line says what it
injects, and its ``run(options: chaos._frame.Options) -> chaos._frame.Outcome`` starts its own
processes, injects the fault, measures its figures and stops everything, bounded in time.
Modules whose names start with an underscore are helpers. ``chaos/README.md`` holds the
figures of a full run.
"""
