"""Exceptions raised by Cairn. Each is a `CairnError` and also the built-in exception it
behaves like, so `except ValueError` catches bad input as Python code expects."""


class CairnError(Exception):
    """Base class of every error Cairn raises."""


class InvalidInputError(CairnError, ValueError):
    """Bad input: wrong dimension or shape, NaN/Inf, a zero vector under cosine, an argument
    out of range, an unsafe collection name, or a malformed filter."""


class IdCollisionError(InvalidInputError):
    """A string id whose 64-bit key (a fixed hash of the string) is that of another string id,
    stored or in the same batch: the batch is refused and nothing is written. About one chance
    in 3.7e19/n² for n ids; give one of the two records another id. The message names both."""


class CollectionNotFoundError(CairnError, LookupError):
    """No collection of that name exists."""


class CollectionExistsError(CairnError, ValueError):
    """A collection of that name exists already."""


class LockedError(CairnError, OSError):
    """Another process or handle holds the database open."""


class ReadOnlyError(CairnError, PermissionError):
    """A write (upsert, delete, create or drop a collection, flush, compact, sync) on a database
    opened with `cairndb.open(path, read_only=True)`: writes go through the process that opened
    it for writing."""


class CorruptionError(CairnError, OSError):
    """A file failed a check: checksum, size, magic or an offset out of range."""


class ClosedError(CairnError, RuntimeError):
    """The database was closed, or the collection dropped."""


class StorageError(CairnError, OSError):
    """An I/O error or failed fsync; after one the database refuses writes until reopened."""


class ForkedProcessError(CairnError, RuntimeError):
    """A handle was used in a process forked from the one that opened the database (e.g. a
    `multiprocessing` worker started with "fork"): it refuses every call and writes nothing.
    Open the database in the child instead."""
