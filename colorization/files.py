"""Writing files so that a crash, a kill or a full disk never leaves a half-written one."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Callable, Union

__all__ = ["atomic_write"]


def atomic_write(path: Union[str, os.PathLike], write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: a crash never leaves a half-written file.

    A full disk raises ``OSError(ENOSPC)`` whatever error the writer itself raised.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The name's start only: a name near the 255-byte limit plus mkstemp's letters would be too long to create.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:40]}.", suffix=".tmp")
    os.close(fd)
    try:
        try:
            write(tmp)
        except OSError:
            raise
        except Exception as exc:
            # torch.save and safetensors report a full disk as their own errors ("unexpected pos 576
            # vs 534"); when the failed write left the disk (nearly) full, say so as an OSError.
            disk = os.statvfs(path.parent)
            if disk.f_bavail * disk.f_frsize < 2**20:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from exc
            raise
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the result should be an ordinary file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
