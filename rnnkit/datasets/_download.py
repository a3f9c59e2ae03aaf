"""Files that datasets download once, check against a known hash, and keep in a local cache.

The cache is `$RNNKIT_HOME/datasets/` when the environment variable `RNNKIT_HOME` is set,
`~/.rnnkit/datasets/` otherwise. A file there whose hash matches is used without touching
the network; a file that is missing is downloaded into a temporary file beside its place,
checked, and only then renamed into place, so the cache never holds a partial or a wrong
download. Without a network, put the file at the path the error message names.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import string
import urllib.request

from rnnkit.saving import _atomic_file

_CHUNK = 1 << 20  # read and hash 1 MiB at a time: a 100 MB file never sits in memory
_TIMEOUT = 60  # seconds without a byte before a stalled download counts as failed
_HASH_LENGTHS = {64: "sha256", 32: "md5"}  # hex digits, as Keras' hash_algorithm="auto"


def cache_root() -> str:
    """The folder rnnkit caches downloads under: `$RNNKIT_HOME`, or `~/.rnnkit`.

    Example:
        >>> import os
        >>> cache_root() == os.environ.get("RNNKIT_HOME", os.path.expanduser("~/.rnnkit"))
        True
    """
    return os.environ.get("RNNKIT_HOME") or os.path.expanduser(os.path.join("~", ".rnnkit"))


def file_digest(path, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def get_file(
    fname, origin: str, file_hash: str, cache_dir=None, cache_subdir: str = "datasets"
) -> str:
    """The local path of a file, downloaded from `origin` into the cache on first use.

    Args:
        fname: the file's name in the cache folder (an absolute path is used as it is).
        origin: the URL to download it from.
        file_hash: the file's sha256 as 64 hex digits (or, for files Keras lists by md5
            only, 32 hex digits of md5). Both a cached and a downloaded file must match.
        cache_dir: the cache root; default `$RNNKIT_HOME`, or `~/.rnnkit` without it.
        cache_subdir: the folder under `cache_dir` that holds the file.

    Returns:
        The path of the checked file, `cache_dir/cache_subdir/fname`.

    Raises:
        ValueError: the cached or the downloaded file does not have the hash `file_hash`.
        OSError: the file is not cached and cannot be downloaded; the message names the
            path to put a copy at by hand.

    Example:
        >>> import hashlib, os, pathlib, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> source = os.path.join(folder, "source.txt")
        >>> _ = pathlib.Path(source).write_bytes(b"hello")
        >>> sha256 = hashlib.sha256(b"hello").hexdigest()
        >>> path = get_file("hello.txt", pathlib.Path(source).as_uri(), sha256, cache_dir=folder)
        >>> os.path.relpath(path, folder), pathlib.Path(path).read_bytes()
        ('datasets/hello.txt', b'hello')
    """
    algorithm = _hash_algorithm(file_hash, fname)
    file_hash = file_hash.lower()
    directory = os.path.join(os.fspath(cache_dir) if cache_dir else cache_root(), cache_subdir)
    path = os.path.join(directory, os.fspath(fname))
    if os.path.isfile(path):
        actual = file_digest(path, algorithm)
        if actual != file_hash:
            raise ValueError(
                f"The cached file '{path}' has {algorithm} {actual}, but {os.path.basename(path)} "
                f"from {origin} has {algorithm} {file_hash}: it is damaged or another file. "
                f"Delete it (os.remove({path!r})) and call again to download it afresh."
            )
        return path
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    except OSError as err:
        raise OSError(
            f"Cannot create the cache folder '{os.path.dirname(path)}' ({err.strerror}). Point "
            "the environment variable RNNKIT_HOME at a folder you can write, or pass cache_dir=."
        ) from err
    _download(origin, path, file_hash, algorithm)
    return path


def _hash_algorithm(file_hash, fname) -> str:
    is_hex = isinstance(file_hash, str) and all(c in string.hexdigits for c in file_hash)
    if not is_hex or len(file_hash) not in _HASH_LENGTHS:
        raise ValueError(
            f"get_file({fname!r}): file_hash must be the file's sha256 as 64 hex digits "
            f"(hashlib.sha256(data).hexdigest()), got {file_hash!r}."
        )
    return _HASH_LENGTHS[len(file_hash)]


def _download(origin: str, path: str, file_hash: str, algorithm: str) -> None:
    """Stream `origin` into a temporary file beside `path`; rename it there if the hash fits."""
    digest = hashlib.new(algorithm)
    try:
        response = urllib.request.urlopen(origin, timeout=_TIMEOUT)
    except (OSError, http.client.HTTPException) as err:  # URLError and HTTPError are OSErrors
        raise _not_cached(origin, path, err) from err
    with response, _progress(origin, response) as advance, _atomic_file(path, True) as f:
        while True:
            try:
                chunk = response.read(_CHUNK)
            except (OSError, http.client.HTTPException) as err:
                raise _not_cached(origin, path, err) from err
            if not chunk:
                break
            digest.update(chunk)
            f.write(chunk)
            advance(len(chunk))
        if digest.hexdigest() != file_hash:  # raising here deletes the temporary file
            raise ValueError(
                f"The download of {os.path.basename(path)} from {origin} has {algorithm} "
                f"{digest.hexdigest()}, but the file should have {algorithm} {file_hash}; it "
                "was not saved. The download was corrupted or the file at the URL changed: "
                f"try again, or put a copy of the right file at '{path}'."
            )


def _not_cached(origin: str, path: str, err: Exception) -> OSError:
    reason = getattr(err, "reason", None) or err
    return OSError(
        f"{os.path.basename(path)} is not in the cache and could not be downloaded from "
        f"{origin} ({reason}). Without a network, download it elsewhere from {origin} and put "
        f"it at '{path}' (or set RNNKIT_HOME to a folder with datasets/{os.path.basename(path)})."
    )


@contextlib.contextmanager
def _progress(origin: str, response):
    """A rich progress bar on stderr while a download runs; drawn only on a terminal."""
    from rich.console import Console
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    size = (getattr(response, "headers", None) or {}).get("Content-Length", "")
    console = Console(stderr=True)
    columns = (*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        total = int(size) if size.isdigit() else None
        task = progress.add_task(f"Downloading {origin}", total=total)
        yield lambda n: progress.advance(task, n)
