"""The one errors module of the course tooling."""


class UserError(Exception):
    """A problem with what the user asked for: printed as one clear line, exit code 2."""
