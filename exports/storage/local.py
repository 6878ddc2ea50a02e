"""Export storage in a local folder: a file appears by an atomic rename once it is whole."""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from exports.storage.base import (
    PARTIAL_SUFFIX,
    ExportObjectNotFoundError,
    ExportStorage,
    InvalidObjectKeyError,
    ObjectReader,
    ObjectWriter,
    check_object_key,
    check_object_prefix,
)


class LocalExportStorage(ExportStorage):
    """Files under one root folder. A writer fills a private partial file next to the target and renames
    it into place: the rename is atomic, and each writer has its own partial file, so a second writer of
    the same key (a job whose lease expired while it still ran) cannot mix its bytes into the first's."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.location = self.root.as_uri()

    def path(self, key: str) -> Path:
        path = (self.root / check_object_key(key)).resolve()
        # resolve() follows symbolic links: a link inside the root that points outside is refused too.
        if not path.is_relative_to(self.root) or path == self.root:
            raise InvalidObjectKeyError(f"object key outside the storage root: {key!r}")
        return path

    @contextlib.contextmanager
    def open_writer(self, key: str) -> Iterator[ObjectWriter]:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor, partial_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=PARTIAL_SUFFIX
        )
        partial = Path(partial_name)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        _fsync_folder(target.parent)

    @contextlib.contextmanager
    def open_reader(self, key: str) -> Iterator[ObjectReader]:
        try:
            handle = self.path(key).open("rb")
        except FileNotFoundError:
            raise ExportObjectNotFoundError(key) from None
        with handle:
            yield handle

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            raise ExportObjectNotFoundError(key) from None

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def delete_everything_under(self, prefix: str) -> int:
        folder = self.path(check_object_prefix(prefix)[:-1])
        if not folder.is_dir():
            return 0
        removed = 0
        # Deepest first, so each folder is empty when its turn comes; hidden partial files included.
        for path in sorted(folder.rglob("*"), key=lambda found: len(found.parts), reverse=True):
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            else:
                path.unlink(missing_ok=True)
                removed += 1
        folder.rmdir()
        return removed

    def download_url(self, key: str, expires_seconds: int, *, filename: str | None = None) -> str | None:
        self.path(key)  # the key is still checked: a caller must not learn to rely on bad keys
        return None

    def leftovers_discard(self, key: str) -> int:
        target = self.path(key)
        if not target.parent.is_dir():
            return 0
        leftovers = list(target.parent.glob(f".{glob.escape(target.name)}.*{PARTIAL_SUFFIX}"))
        for leftover in leftovers:
            leftover.unlink(missing_ok=True)
        return len(leftovers)


def _fsync_folder(folder: Path) -> None:
    """Makes the rename itself durable, not only the file's bytes."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
