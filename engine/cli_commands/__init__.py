"""Sub-commands of ``apex-director`` beyond ``render`` and ``analyze``, one module each.

Each module defines ``register(subparsers)`` (adds its parser and sets
``handler=run``) and ``run(args) -> int``; ``engine/cli.py`` lists them in
``_COMMAND_MODULES``.  Errors are raised as the engine's typed exceptions; the CLI's
``main`` turns them into one ``error:`` line and an exit code.
"""
