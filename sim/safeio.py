"""Bounded, non-blocking reads of files that may be hostile.

A path handed to driftgate (a genome file, a registry's genome, a config) may be a symlink to
/dev/zero, a named pipe, a 1 GB file or a link out of the directory it should live in. Reading it
with ``Path.read_bytes()`` would allocate without limit, block forever or follow the link. Here:

* the file is opened with ``O_NONBLOCK`` (a FIFO does not block the open) and, for files inside a
  store the caller owns (``follow_symlinks=False``), ``O_NOFOLLOW`` (a symlink is refused);
* ``fstat`` on the open descriptor must say *regular file* (no device, pipe, socket, directory);
* its size is checked against ``max_bytes`` *before* anything is read, and no more than that size
  (plus one byte, to notice a file that grows) is ever read.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path


class UnsafeFileError(OSError):
    """The path is not a regular file of acceptable size (or is a refused symlink)."""


def read_bounded(path: str | os.PathLike, max_bytes: int, *, follow_symlinks: bool = True,
                 what: str = "file") -> bytes:
    """The bytes of regular file `path`, at most `max_bytes` of them; UnsafeFileError otherwise."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if not follow_symlinks and os.path.islink(path):
            raise UnsafeFileError(f"{what} {path} is a symlink; refused (files here are never links)") from None
        raise UnsafeFileError(f"cannot open {what} {path}: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a named pipe" if stat.S_ISFIFO(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode)
                    or stat.S_ISBLK(st.st_mode) else "a directory" if stat.S_ISDIR(st.st_mode)
                    else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
            raise UnsafeFileError(f"{what} {path} is {kind}; only regular files are read")
        if st.st_size > max_bytes:
            raise UnsafeFileError(f"{what} {path} is {st.st_size} bytes, more than the {max_bytes} allowed")
        chunks, left = [], st.st_size + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > max_bytes:
            raise UnsafeFileError(f"{what} {path} grew past the {max_bytes} bytes allowed while being read")
        return data
    finally:
        os.close(fd)


def inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """True if `path`, with every symlink resolved, lies inside `root` (also resolved)."""
    try:
        real, base = Path(path).resolve(), Path(root).resolve()
    except (OSError, RuntimeError):
        return False
    return real == base or base in real.parents


MAX_CONFIG_BYTES = 16 << 20      # parameter files, suites, monitor and replay configs, bag metadata


def read_text_bounded(path: str | os.PathLike, max_bytes: int = MAX_CONFIG_BYTES, *, what: str = "file") -> str:
    """`read_bounded` decoded as UTF-8 (UnsafeFileError if it is not text)."""
    data = read_bounded(path, max_bytes, what=what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UnsafeFileError(f"{what} {path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
