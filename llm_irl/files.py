"""Local files: atomic writes (readers never see half a file, a crash keeps the previous version), and
telling a mistyped local path from a Hub name before any network lookup."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager


@contextmanager
def atomic_path(path: str):
    """Yield a temporary path in the same folder as `path`, renamed onto it when the block succeeds."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; the result should read like any other file
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_atomic(path: str, text: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def missing_local_path(name: str) -> str | None:
    """Why `name`, which does not exist here, must be a mistyped local path rather than a Hub name
    (None when it may be a Hub name). A Hub lookup of a typo retries for about a minute; this answers at
    once. Spelled as a path (`./x`, `/x`, `~/x`, `a/b/c`) it is one; `org/name` is one when a folder
    `org` exists here."""
    if os.path.exists(os.path.expanduser(name)):
        return None
    if name.startswith((".", "/", "~")) or name.strip("/").count("/") > 1:
        return ""
    first = name.split("/", 1)[0]
    if "/" in name and os.path.isdir(first):
        return f" (read as a path, not a Hub id, because folder {first!r} exists here)"
    return None
