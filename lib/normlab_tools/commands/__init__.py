"""The subcommands of `normlab`, one module each: its arguments and a handler.

These modules import only the standard library at the top, so `normlab --help` is fast;
each handler imports the module that does the work when the command runs.
"""
