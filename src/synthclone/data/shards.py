"""WebDataset-style tar shards: a store layout for millions of images, and the pixels source that reads it.

A store written with ``layout: tar`` holds one tar file per shard, ``shards/<shard>.tar``, instead of
one PNG file per image. Members follow the WebDataset convention: a sample is the run of
consecutive members that share a *key*, the member name up to the first dot of its base name
(folders included); the rest is the extension. Every image is three members::

    <safe_class>/<index:06d>.png    the PNG bytes (the manifest's sha256 is of exactly these bytes)
    <safe_class>/<index:06d>.cls    the class index as ASCII digits (WebDataset's label convention)
    <safe_class>/<index:06d>.json   what made it: id, class, prompt, seed, generator settings, filter scores

The key's base name is the slot index alone because class folder names may contain dots, which
would end a WebDataset key early. Filter decisions (``kept``) live in ``manifest.parquet`` only,
whose ``path`` column names each image as ``shards/<shard>.tar#<member>``; the tars never change
after their shard is written.

Tar bytes depend only on the members: fixed mtime (0), uid/gid (0), empty user/group names,
mode 0644, ustar headers, so the same config gives byte-identical tars on any machine.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections import OrderedDict
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..errors import UserError
from .images import FilePixels, fit_square

TAR_SEP = "#"  # manifest path of a member: "shards/<shard>.tar#<member>"
OPEN_TARS = 8  # open tar files kept per process (reads run shard by shard; shuffled reads reopen)


def member_key(safe_class: str, index: int) -> str:
    """The WebDataset key of slot ``index`` of a class: ``"<safe_class>/<index:06d>"`` (no dot in the base name)."""
    return f"{safe_class}/{int(index):06d}"


def split_path(path: str) -> Tuple[str, str]:
    """``"shards/x.tar#Coat/000001.png"`` -> ``("shards/x.tar", "Coat/000001.png")``."""
    tar, sep, member = str(path).partition(TAR_SEP)
    if not sep or not member:
        raise UserError(f"manifest path {path!r} does not name a tar member (shards/<shard>.tar#<member>); "
                        "the store's manifest does not match its layout, run synthclone generate again")
    return tar, member


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = int(size)
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def write_tar(path: str | Path, members: Iterable[Tuple[str, bytes]]) -> None:
    """Write ``(name, bytes)`` members to the tar file ``path`` atomically (temp file + ``os.replace``).

    Headers carry no clock or user (see the module doc), so equal members give equal bytes. The
    tar is streamed to the temp file, never held in memory whole.
    """
    from ..paths import atomic_write

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh, tarfile.open(fileobj=fh, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for name, data in members:
                tar.addfile(_info(name, len(data)), io.BytesIO(data))

    atomic_write(path, write)


def _scan_ustar(fd: int) -> Optional[Dict[str, Tuple[int, int]]]:
    """Members of a tar of plain ustar headers (what :func:`write_tar` writes), one 512-byte read per
    member: several times faster than :mod:`tarfile` on stores of millions of members. None when a
    header is anything else (pax, GNU long names, a damaged checksum): :mod:`tarfile` reads those."""
    found: Dict[str, Tuple[int, int]] = {}
    pos = 0
    while True:
        block = os.pread(fd, 512, pos)
        if len(block) < 512:  # cut short (a tar from write_tar ends with zero blocks): tarfile says how
            return None
        if block.count(0) == 512:  # end-of-archive block
            return found
        if block[257:262] != b"ustar" or block[156:157] not in (b"0", b"\0"):
            return None
        try:
            size = int(block[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
            stored = int(block[148:156].split(b"\0", 1)[0].strip() or b"0", 8)
        except ValueError:
            return None
        if stored != sum(block[:148]) + 256 + sum(block[156:]):  # the checksum field counts as spaces
            return None
        name = block[:100].split(b"\0", 1)[0]
        prefix = block[345:500].split(b"\0", 1)[0]
        found[(prefix + b"/" + name if prefix else name).decode("utf-8", "surrogateescape")] = (pos + 512, size)
        pos += 512 + (size + 511) // 512 * 512


def index_tar(path: str | Path) -> Tuple[Dict[str, Tuple[int, int]], Optional[str]]:
    """``({member name: (data offset, size)}, problem)`` of one tar; ``problem`` says why it could not be
    read (whole or in part: the members before a damaged header are still listed), else None."""
    found: Dict[str, Tuple[int, int]] = {}
    if hasattr(os, "pread"):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return found, "missing"
        except OSError as exc:
            return found, exc.__class__.__name__
        try:
            fast = _scan_ustar(fd)
        finally:
            os.close(fd)
        if fast is not None:
            return fast, None
    try:
        with tarfile.open(path, mode="r:") as tar:
            for info in tar:
                if info.isfile():
                    found[info.name] = (int(info.offset_data), int(info.size))
    except FileNotFoundError:
        return found, "missing"
    except (tarfile.TarError, OSError, EOFError) as exc:
        return found, exc.__class__.__name__
    return found, None


class TarPixels(FilePixels):
    """PNG members of tar files decoded on demand to ``channels`` x ``size`` x ``size``.

    Holds, per sample, its tar (an index into ``tars``), the member's data offset and size, read
    once from the tar headers when the source is built; ``read(i)`` reads those bytes with one
    positioned read and decodes them with the same rules as :class:`~synthclone.data.images.FilePixels`
    (grayscale or RGB, shorter side resized, centre crop). Open files are cached per process and
    keyed by its pid: DataLoader workers are forked copies, and a file object inherited across a
    fork would share its offset with the parent, so each process opens its own.

    Args:
        root: folder the tar paths are relative to (the store).
        paths: one ``"<tar>#<member>"`` per sample (the manifest's ``path`` column).
        index: ``{tar path: ({member: (offset, size)}, problem)}`` to reuse (:func:`index_tar` of each tar),
            e.g. from another view of the same store; built here when None.
    """

    def __init__(self, root: str | Path, paths: Sequence[str], channels: int, size: int, skip_unreadable: bool = False,
                 crop_pct: float = 1.0, index: Optional[Dict[str, tuple]] = None):
        super().__init__(root, paths, channels, size, skip_unreadable, crop_pct)
        split = [split_path(p) for p in self.paths]
        self.tars: List[str] = list(dict.fromkeys(t for t, _ in split))
        self.index = dict(index or {})
        for tar in self.tars:
            if tar not in self.index:
                self.index[tar] = index_tar(os.path.join(self.root, tar))
        position = {t: k for k, t in enumerate(self.tars)}
        self.tar_of = np.array([position[t] for t, _ in split], dtype=np.int32)
        offsets = [self.index[t][0].get(m, (-1, -1)) for t, m in split]
        self.offset = np.array([o for o, _ in offsets], dtype=np.int64)  # -1: not in its tar
        self.nbytes = np.array([n for _, n in offsets], dtype=np.int64)
        self._pid: Optional[int] = None
        self._files: "OrderedDict[int, object]" = OrderedDict()

    def describe(self, i: int) -> str:
        tar, member = split_path(self.paths[i])
        return f"{os.path.join(self.root, tar)}{TAR_SEP}{member}"

    def with_shape(self, channels: int, size: int) -> "TarPixels":
        """The same samples decoded at another shape (reuses the tar index; nothing is re-read)."""
        return TarPixels(self.root, self.paths, channels, size, self.skip_unreadable, self.crop_pct, self.index)

    def native_shape(self, i: int) -> Tuple[int, int]:
        """``(channels, shorter side)`` of sample ``i`` as stored (1 for grayscale PNGs, else 3)."""
        from PIL import Image

        try:
            with Image.open(io.BytesIO(self._bytes(i))) as im:
                return (1 if im.mode == "L" else 3), min(im.size)
        except (OSError, KeyError, EOFError, ValueError, SyntaxError) as exc:
            why = exc.args[0] if isinstance(exc, KeyError) else exc.__class__.__name__
            raise UserError(f"cannot read image {self.describe(i)} ({why}); "
                            "run synthclone generate again to rewrite it") from None

    def __getstate__(self) -> dict:  # open files stay in the process that opened them
        state = dict(self.__dict__)
        state["_pid"], state["_files"] = None, OrderedDict()
        return state

    def _file(self, k: int):
        if self._pid != os.getpid():  # a forked worker: forget (never close) the parent's files
            self._pid, self._files = os.getpid(), OrderedDict()
        fh = self._files.get(k)
        if fh is None:
            fh = open(os.path.join(self.root, self.tars[k]), "rb", buffering=0)
            self._files[k] = fh
            while len(self._files) > OPEN_TARS:
                self._files.popitem(last=False)[1].close()
        else:
            self._files.move_to_end(k)
        return fh

    def _bytes(self, i: int) -> bytes:
        k, offset, n = int(self.tar_of[i]), int(self.offset[i]), int(self.nbytes[i])
        if offset < 0:
            problem = self.index[self.tars[k]][1]
            raise KeyError("tar " + problem if problem else "not in the tar")
        fh = self._file(k)
        if hasattr(os, "pread"):
            data = os.pread(fh.fileno(), n, offset)
        else:  # pragma: no cover - Windows
            fh.seek(offset)
            data = fh.read(n)
        if len(data) != n:
            raise EOFError(f"{len(data)} of {n} bytes")
        return data

    def read(self, i: int) -> Optional[torch.Tensor]:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(self._bytes(i))) as im:
                im = im.convert("L" if self.channels == 1 else "RGB")
                im = fit_square(im, self.size, self.crop_pct)
                array = np.asarray(im, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, KeyError, EOFError) as exc:
            if self.skip_unreadable:
                return None
            why = exc.args[0] if isinstance(exc, KeyError) else exc.__class__.__name__
            part = os.path.splitext(self.tars[int(self.tar_of[i])])[0] + ".parquet"
            raise UserError(f"cannot read image {self.describe(i)} ({why}); delete {part} and run the same synthclone "
                            "generate again to rewrite its shard, or set data.skip_unreadable: true") from None
        t = torch.from_numpy(array.copy())
        return t[None] if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


__all__ = ["TAR_SEP", "TarPixels", "index_tar", "member_key", "split_path", "write_tar"]
