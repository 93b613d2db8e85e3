"""The store's own error: the database could not be reached, or refused what was asked."""


class DatabaseError(Exception):
    """The database could not be reached or refused the statement."""
