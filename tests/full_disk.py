"""A full disk on demand: files that a module opens for writing fail with ENOSPC.

    fill_disk_after(monkeypatch, byollm.data.prepare, writes=3)

patches the module's `open` (found before the builtin), so only that module's writes fail, with
the OSError a real full disk raises: the first `writes` writes succeed, every later one fails.
"""

from __future__ import annotations

import builtins
import errno
import os


def fill_disk_after(monkeypatch, module, writes: int = 0) -> None:
    done = {"writes": 0}

    class FullDiskFile:
        def __init__(self, file):
            self.file = file

        def write(self, data):
            done["writes"] += 1
            if done["writes"] > writes:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.file.write(data)

        def __getattr__(self, name):  # flush, fileno, close...
            return getattr(self.file, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

    def opener(path, mode="r", *args, **kwargs):
        file = builtins.open(path, mode, *args, **kwargs)  # noqa: SIM115 - the caller closes it
        return FullDiskFile(file) if any(m in mode for m in "wax") else file

    monkeypatch.setattr(module, "open", opener, raising=False)
