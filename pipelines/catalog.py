"""The catalog: which videos a run covers, and a content fingerprint for each.

Paths may be local files, folders (searched recursively), globs, or ``s3://`` /
``gs://`` prefixes, all through pyarrow's filesystems (credentials from the
usual AWS_* / GOOGLE_* environment). A file named explicitly is always taken,
whatever its name, and judged by its content at probe; folders, globs and
prefixes contribute files with a video file suffix, so sidecar files (subtitles,
JSON) in a catalog folder do not become failed rows.

``video_id`` is a content fingerprint (size plus the first and last MiB), so a
moved or renamed file is the same video and a re-run finds it done.

A symlink found inside a folder or glob that points outside it is skipped, with the
reason, unless ``follow_external_links``: a catalog folder must not be a way to read
any file the ingest job can (``x.mp4 -> /etc/passwd``). So are a file whose name is not
UTF-8 text (the stores keep paths as UTF-8), a symlink loop and a link to nothing, each
with the fix; a file that cannot be read is skipped when it is fingerprinted. Files with
other suffixes are counted per suffix, so the run can say what it passed over.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import glob
import hashlib
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.fs as pafs

from annotator_core.errors import ValidationFailed

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".wmv", ".flv", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts"}
    | {".3gp", ".ogv", ".mxf"}
    # DVD and camcorder formats (MPEG program streams, DV, MPEG-TS in .tod), checked to ingest as they are;
    # not .m2v: decord cannot count the frames of a bare MPEG-2 elementary stream
    | {".vob", ".dv", ".f4v", ".asf", ".divx", ".mod", ".tod"}
)
REMOTE_SCHEMES = ("s3://", "gs://", "gcs://")
FINGERPRINT_CHUNK = 1 << 20  # bytes read from each end of the file
COPY_CHUNK = 8 << 20


@dataclass(frozen=True)
class CatalogEntry:
    uri: str  # absolute local path or s3:// / gs:// URI
    size: int


@dataclass
class Catalog:
    """What the paths name: the files to ingest and the ones left out, each with its reason."""

    entries: list[CatalogEntry] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path as found, why)
    other_suffixes: Counter[str] = field(default_factory=Counter)  # files a folder or glob held, not videos


def is_remote(uri: str) -> bool:
    return uri.startswith(REMOTE_SCHEMES)


def scan_catalog(paths: Iterable[str], *, follow_external_links: bool = False) -> Catalog:
    """Every file the given paths name, de-duplicated, in a stable (sorted per path) order."""
    catalog = Catalog()
    seen: set[str] = set()
    for raw in paths:
        if is_remote(raw):
            entries = _list_remote(raw)
        else:
            entries = _list_local(raw, catalog, follow_external_links=follow_external_links)
        for entry in entries:
            if entry.uri not in seen:
                seen.add(entry.uri)
                catalog.entries.append(entry)
    return catalog


def list_videos(paths: Iterable[str], *, follow_external_links: bool = False) -> list[CatalogEntry]:
    """The files :func:`scan_catalog` would ingest."""
    return scan_catalog(paths, follow_external_links=follow_external_links).entries


def _is_video_name(name: str) -> bool:
    base = os.path.basename(name)
    return not base.startswith(".") and os.path.splitext(base)[1].lower() in VIDEO_SUFFIXES


def _not_utf8(path: str) -> str | None:
    """Why a path cannot go into the catalog (its name is not UTF-8 text), or None.

    Python keeps such bytes as lone surrogates (PEP 383), which Ray Data and LanceDB, storing UTF-8,
    cannot carry: one such name used to fail the whole run.
    """
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return NOT_UTF8
    return None


NOT_UTF8 = "its name is not UTF-8 text; rename it in UTF-8, e.g. convmv -f latin1 -t utf8 --notest FILE"
SYMLINK_LOOP = "a symlink loop; remove or fix the link"
UNREACHABLE = (
    "permission denied: a folder on its way can be listed but not entered (its mode lacks x); chmod +x the folder"
)
UNREACHABLE_FOLDER = (
    "permission denied: a folder this user can list but not enter (its mode lacks x, e.g. after chmod -R 644), so "
    "no video in it is ingested; chmod +x it (chmod -R u+X for a tree)"
)
UNREADABLE_FOLDER = (
    "permission denied: a folder this user cannot list, so no video in it is ingested; check its owner and mode (chmod)"
)
# Folders a disk's file system keeps for itself, unreadable to users by design: not worth a word.
SYSTEM_FOLDERS = frozenset({"lost+found", "System Volume Information", "$RECYCLE.BIN"})


def shown(path: str | os.PathLike[str]) -> str:
    """A path as printable UTF-8 text: bytes that are not UTF-8 (surrogates, PEP 383) as ``\\xe9``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _cannot_list(folder: Path) -> bool:
    """Whether this process may not list ``folder`` (permission denied), which ``Path.rglob`` passes over."""
    try:
        with os.scandir(folder):
            return False
    except PermissionError:
        return True
    except OSError:
        return False  # gone since it was listed, or not a folder after all: nothing to report


def _broken_link(path: Path) -> str | None:
    """Why a symlink cannot be followed (a loop, or a link to nothing), or None when it can (or is no link)."""
    if not path.is_symlink() or path.exists():
        return None
    try:
        target = path.resolve()
    except (RuntimeError, OSError):  # Python 3.11 raises RuntimeError for a loop, 3.13 OSError(ELOOP)
        return SYMLINK_LOOP
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return SYMLINK_LOOP
    return f"a link to {shown(target)}, which does not exist; remove or fix the link"


def _list_local(raw: str, catalog: Catalog, *, follow_external_links: bool) -> list[CatalogEntry]:
    skipped = catalog.skipped
    path = Path(raw).expanduser()
    try:
        if (why := _broken_link(path)) is not None:  # named explicitly, or a folder or glob given as a link
            skipped.append((shown(path), why))
            return []
        if path.is_file():  # named explicitly: taken as the user gave it, link or not
            resolved = str(path.resolve())
            if (why := _not_utf8(resolved)) is not None:
                skipped.append((shown(path), why))
                return []
            return [CatalogEntry(resolved, path.stat().st_size)]
        is_dir = path.is_dir()
    except PermissionError:  # a folder on its way can be listed but not entered
        skipped.append((shown(path), UNREACHABLE))
        return []
    if is_dir:
        root, found_paths = path, list(path.rglob("*"))
    elif glob.has_magic(raw):
        fixed = str(path).split("*")[0].split("?")[0].split("[")[0]  # the part of the pattern before any wildcard
        root = Path(os.path.dirname(fixed) or ".")
        found_paths = [Path(p) for p in glob.glob(str(path), recursive=True)]
    else:
        raise ValidationFailed(
            f"path {shown(raw)!r} does not exist; give video files, folders, globs (quoted) or s3:// / gs:// prefixes."
        )
    files: list[Path] = []
    if is_dir and _cannot_list(path):
        skipped.append((shown(path), UNREADABLE_FOLDER))
    unreachable: set[Path] = set()  # folders that can be listed but not entered (read without execute)
    for found in found_paths:
        try:
            if _is_video_name(found.name):
                files.append(found)
            elif found.name.startswith("."):
                continue
            elif found.is_file():
                catalog.other_suffixes[found.suffix.lower() or "(none)"] += 1
            elif found.name not in SYSTEM_FOLDERS and found.is_dir() and not found.is_symlink() and _cannot_list(found):
                skipped.append((shown(found), UNREADABLE_FOLDER))  # rglob passes over it without a word
        except PermissionError:
            unreachable.add(found.parent)
    files.sort()
    inside = root.resolve()
    out = []
    for found in files:
        try:
            entry = _entry(found, inside, skipped, follow_external_links=follow_external_links)
        except PermissionError:
            unreachable.add(found.parent)
            continue
        if entry is not None:
            out.append(entry)
    skipped.extend((shown(folder), UNREACHABLE_FOLDER) for folder in sorted(unreachable))
    return out


def _entry(
    found: Path, inside: Path, skipped: list[tuple[str, str]], *, follow_external_links: bool
) -> CatalogEntry | None:
    """A file a folder or glob found, as a catalog entry; None when it is left out (why, in ``skipped``)."""
    why = _broken_link(found)
    target = found.resolve() if why is None else found
    if why is None and not follow_external_links and not target.is_relative_to(inside):
        why = f"a link to {shown(target)}, outside {shown(inside)}; set VA_FOLLOW_EXTERNAL_LINKS=true to ingest it"
    if why is None:
        why = _not_utf8(str(target))
    if why is not None:
        skipped.append((shown(found), why))
        return None
    return CatalogEntry(str(target), target.stat().st_size) if target.is_file() else None


def _list_remote(raw: str) -> list[CatalogEntry]:
    scheme, rest = raw.split("://", 1)
    pattern = rest if glob.has_magic(rest) else None
    base = rest.split("*")[0].rsplit("/", 1)[0] if pattern else rest
    try:
        fs, root = pafs.FileSystem.from_uri(f"{scheme}://{base}")
        info = fs.get_file_info(root)
        if info.type == pafs.FileType.File and pattern is None:
            return [CatalogEntry(raw, int(info.size or 0))]
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    except (OSError, ValueError) as exc:
        raise ValidationFailed(
            f"cannot list {raw!r} ({exc}); check the bucket and prefix names and the AWS_* / GOOGLE_* credentials."
        ) from None
    out = []
    bucket = base.split("/", 1)[0]
    for item in sorted(infos, key=lambda i: i.path):
        if item.type != pafs.FileType.File or not _is_video_name(item.path):
            continue
        key = item.path if item.path.startswith(bucket) else f"{bucket}/{item.path}"
        if pattern and not fnmatch.fnmatch(key, pattern):
            continue
        out.append(CatalogEntry(f"{scheme}://{key}", int(item.size or 0)))
    return out


def _open_fs(uri: str) -> tuple[pafs.FileSystem, str]:
    if is_remote(uri):
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), uri


def fingerprint(uri: str, size: int) -> str:
    """Content fingerprint: blake2b of the size and the first and last MiB (hex, 32 characters)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(size).encode())
    fs, path = _open_fs(uri)
    with fs.open_input_file(path) as f:
        digest.update(f.read(min(size, FINGERPRINT_CHUNK)))
        if size > FINGERPRINT_CHUNK:
            tail = max(FINGERPRINT_CHUNK, size - FINGERPRINT_CHUNK)
            f.seek(tail)
            digest.update(f.read(size - tail))
    return digest.hexdigest()


@contextlib.contextmanager
def local_copy(uri: str) -> Iterator[str]:
    """A local path for ``uri``: the file itself, or a temporary download of a remote object."""
    if not is_remote(uri):
        yield uri
        return
    fs, path = _open_fs(uri)
    suffix = os.path.splitext(path)[1]
    with tempfile.NamedTemporaryFile(suffix=suffix, prefix="va-ingest-") as tmp:
        with fs.open_input_stream(path) as src:
            while chunk := src.read(COPY_CHUNK):
                tmp.write(chunk)
        tmp.flush()
        yield tmp.name


def title_of(uri: str) -> str:
    """A human title from the file name: ``/a/b/Some_Film.mp4`` -> ``Some_Film``."""
    return os.path.splitext(os.path.basename(uri.rstrip("/")))[0]
