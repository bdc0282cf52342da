"""Content-addressed files through Django's storage API (never raw paths).

A file is stored under a name derived from its SHA-256, read back and verified before
anyone may point a database row at it. A worker killed mid-write leaves at most a
partial file under that name; the next attempt finds the hash wrong, deletes it and
writes it again. Because only the storage API is used, S3-compatible object storage
(django-storages) works by changing the STORAGES setting.
"""

from __future__ import annotations

from django.core.files.base import ContentFile
from django.core.files.storage import Storage, default_storage

from perceptlab.lib.images import sha256_hex


class StoredFileCorrupt(Exception):
    def __init__(self, name: str, expected: str, found: str) -> None:
        super().__init__(f"{name}: stored SHA-256 {found} does not match {expected}")


def content_name(folder: str, sha256: str, extension: str) -> str:
    return f"{folder}/{sha256[:2]}/{sha256}.{extension}"


def read_bytes(name: str, *, storage: Storage | None = None) -> bytes:
    storage = storage or default_storage
    with storage.open(name, "rb") as handle:
        return bytes(handle.read())


def store_verified(
    data: bytes, *, folder: str, extension: str, storage: Storage | None = None
) -> tuple[str, str]:
    """Store ``data`` content-addressed; returns ``(name, sha256)`` once verified."""
    storage = storage or default_storage
    digest = sha256_hex(data)
    name = content_name(folder, digest, extension)
    if storage.exists(name):
        if sha256_hex(read_bytes(name, storage=storage)) == digest:
            return name, digest
        storage.delete(name)  # a partial write from a killed worker
    saved = storage.save(name, ContentFile(data))
    found = sha256_hex(read_bytes(saved, storage=storage))
    if found != digest:
        storage.delete(saved)
        raise StoredFileCorrupt(saved, digest, found)
    return saved, digest
