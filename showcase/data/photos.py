"""Photo store: maps a photo id to its file inside one folder, refusing ids that would escape it."""
from __future__ import annotations

import re
from pathlib import Path

_SAFE_ID = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_\-.=]*$")
EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")


class PhotoStore:
    """Photos named by id (`AF1Qip….jpg`) in one folder.

    Args:
        root: the folder holding the photo files.

    Raises:
        ValueError: from `path` when an id is absolute, contains a path separator or `..`, or has odd characters.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    @staticmethod
    def check_id(photo_id: str) -> str:
        if not isinstance(photo_id, str) or not _SAFE_ID.match(photo_id) or ".." in photo_id:
            raise ValueError(f"unsafe photo id {photo_id!r}: ids must be plain file names inside the photo folder")
        return photo_id

    def path(self, photo_id: str) -> Path:
        """The file of `photo_id` (existing file with a known extension, else `<root>/<id>.jpg`)."""
        self.check_id(photo_id)
        base = self.root / photo_id
        candidates = [base] if base.suffix.lower() in EXTENSIONS else [base.with_name(photo_id + e) for e in EXTENSIONS]
        found = next((c for c in candidates if c.is_file()), candidates[0])
        if self.root not in found.resolve().parents:  # symlinks pointing outside are refused too
            raise ValueError(f"photo id {photo_id!r} resolves outside {self.root}")
        return found

    def exists(self, photo_id: str) -> bool:
        try:
            return self.path(photo_id).is_file()
        except (ValueError, OSError):  # unsafe id, name too long, ...
            return False

    def ids(self) -> list[str]:
        """Ids (file stems) of every image file in the folder, sorted."""
        return sorted(p.stem for p in self.root.iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file())
