"""CLI commands, one module per concern; each exposes ``register(app)``.

Commands only parse arguments, call public functions of the library and
print results; they hold no logic of their own.
"""
