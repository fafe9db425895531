"""The run folder `out_dir/name/`: is it a run, who may write it, and what --overwrite deletes.

    runs/<name>/
        run.json         {"format": "byollm-run", "version": 1, "name": ...}: this is a byollm run
        .lock            the pid of the process training it (flock-ed, there while it runs)
        checkpoint/  best/  metrics.jsonl  loss.png  samples.txt  tensorboard/
        report.md  machine.json   the run's card (train/report.py) and the machine it ran on

    >>> folder = RunFolder.open("runs/tiny", resume=False, overwrite=False)  # doctest: +SKIP
    >>> folder.mark("tiny")  # when training starts writing                   # doctest: +SKIP
    >>> folder.release()     # at the end, however it ends                    # doctest: +SKIP

Design choices:
- **Only a run is touched.** A folder that holds anything and is not a byollm run (no run.json,
  no checkpoint of an older byollm) is refused before anything is written into it, whatever the
  flags: `--out_dir ~ --name Documents --overwrite` changes nothing.
- **--overwrite deletes only what byollm wrote**: the entries listed in `RUN_ENTRIES` (and the
  temporary and `.old` twins of the checkpoints). A run folder that also holds a file of yours
  is refused, with the file named, and nothing is deleted. The deletion waits for the new run's
  first write (`mark`): a start that fails before it (a bad corpus, a bad `init_from`) keeps
  the old run whole.
- **One writer.** The training process holds an exclusive `flock` on `.lock` as long as it runs;
  a second `byollm train` or `--resume` of the same folder is refused with the first one's pid.
  The kernel drops the lock when the process ends, however it ends, so a SIGKILLed run never
  blocks the next one: the `.lock` it leaves is simply taken over (a normal exit removes it).
  Where `fcntl` is missing (Windows) no lock is taken.
- A folder this process created for a run that then failed before writing anything (a typo in
  `--corpus`) is removed again, so the next attempt does not find a "run" in the way.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from byollm.errors import ByollmError
from byollm.model.checkpoint import CONFIG_FILE, LATEST, RUN_CHECKPOINT_FOLDERS, resolve_checkpoint
from byollm.model.checkpoint import FORMAT as MODEL_FORMAT
from byollm.paths import temporary_target, write_file_atomically

try:  # POSIX only
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

RUN_FILE = "run.json"
LOCK_FILE = ".lock"


class RunInUse(ByollmError):
    """The run folder is locked by another live process (`holder` is its pid, as written)."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


RUN_FORMAT = "byollm-run"
RUN_VERSION = 1
# The files the trainer and the report write beside the checkpoints (`LATEST`, `BEST`).
METRICS_FILE = "metrics.jsonl"
LOSS_PLOT_FILE = "loss.png"
SAMPLES_FILE = "samples.txt"
TENSORBOARD_DIR = "tensorboard"
REPORT_FILE = "report.md"
MACHINE_FILE = "machine.json"
# Everything the trainer writes into a run folder, and so all that --overwrite may delete.
RUN_ENTRIES = {RUN_FILE, METRICS_FILE, LOSS_PLOT_FILE, SAMPLES_FILE, TENSORBOARD_DIR}
RUN_ENTRIES |= {REPORT_FILE, MACHINE_FILE, *RUN_CHECKPOINT_FOLDERS}


def is_run_entry(name: str) -> bool:
    """Whether `name` is written by byollm in a run folder: an entry, or the temporary one of a
    write that a crash interrupted (`byollm.paths.temporary_path`)."""
    temporary = temporary_target(name)
    return name in RUN_ENTRIES or (temporary is not None and temporary[0] in RUN_ENTRIES)


def is_run_folder(path: Path) -> bool:
    """True when `path` holds a byollm run: its run.json, or a checkpoint with a train section."""
    try:
        marker = json.loads((path / RUN_FILE).read_text())
        if isinstance(marker, dict) and marker.get("format") == RUN_FORMAT:
            return True
    except (OSError, ValueError):
        pass
    # Runs of an older byollm: a checkpoint the trainer saved. Only its header is looked at (not
    # `read_checkpoint_config`'s checks): a damaged checkpoint is still a run, not a stranger's.
    for sub in RUN_CHECKPOINT_FOLDERS:
        try:
            config = json.loads((path / sub / CONFIG_FILE).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(config, dict) and config.get("format") == MODEL_FORMAT and "train" in config:
            return True
    return False


class RunFolder:
    """A run folder opened for training: checked, locked, and cleared if asked to."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock_fd: int | None = None
        self._created = False
        self._clear_pending = False  # --overwrite: delete the old run at the first write

    @classmethod
    def open(cls, path: str | Path, *, resume: bool, overwrite: bool) -> RunFolder:
        """Check `path` for this kind of start and take its lock; ByollmError if it is not fit."""
        folder = cls(path)
        folder._refuse_if_not_a_run()
        if resume:
            folder._require_checkpoint()
        folder._lock()
        try:  # checked again under the lock: another process may have changed the folder
            if resume:
                folder._require_checkpoint()
            elif folder._entries():
                if not overwrite:
                    raise ByollmError(
                        f"{folder.path} already holds a run; pass --resume to continue it, "
                        "--overwrite to delete it and start over, or --name to start another"
                    )
                # Checked now, deleted only when the new run writes (`mark`): a command that
                # fails first (a typo in --corpus, an --init_from inside this run) loses nothing.
                folder._check_clearable()
                folder._clear_pending = True
        except BaseException:
            folder.release()
            raise
        return folder

    def mark(self, name: str) -> None:
        """Write run.json (once): from now on the folder is recognisably a byollm run. With
        --overwrite, the old run is deleted first."""
        if self._clear_pending:
            self._clear()
            self._clear_pending = False
        path = self.path / RUN_FILE
        if path.exists():
            return
        record = {"format": RUN_FORMAT, "version": RUN_VERSION, "name": name}
        record["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_file_atomically(path, (json.dumps(record, indent=2) + "\n").encode())

    def release(self) -> None:
        """Drop the lock; remove the folder again if this process created it and wrote nothing."""
        if self._lock_fd is None:
            return
        try:
            # Removed while still held: a process that opened the old file meanwhile notices
            # (in _lock) that it locked a file no longer in the folder, and tries again.
            (self.path / LOCK_FILE).unlink(missing_ok=True)
            if self._created and not self._entries():
                self.path.rmdir()
        except OSError:
            pass  # a folder that cannot be tidied is no reason to fail a finished run
        finally:
            os.close(self._lock_fd)  # closing the file drops the flock
            self._lock_fd = None

    # --- helpers -------------------------------------------------------------------------------

    def _entries(self) -> list[Path]:
        if not self.path.is_dir():
            return []
        return [p for p in self.path.iterdir() if p.name != LOCK_FILE]

    def _require_checkpoint(self) -> None:
        from byollm.train.checkpoint import STATE_FILE

        try:
            resolve_checkpoint(self.path / LATEST, require=STATE_FILE)
        except ByollmError:
            raise ByollmError(f"{self.path}: no checkpoint to resume from") from None

    def _refuse_if_not_a_run(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise ByollmError(
                f"{self.path} is a file, not a run folder; choose another --name or --out_dir"
            )
        if self._entries() and not is_run_folder(self.path):
            raise ByollmError(
                f"{self.path} holds files but is not a byollm run (no {RUN_FILE}); byollm will "
                "neither train into it nor delete it: choose another --name or --out_dir"
            )

    def _lock(self) -> None:
        """Take the exclusive lock on .lock, creating the folder if needed."""
        for _attempt in range(5):
            try:
                self.path.mkdir(parents=True)
                self._created = True
            except FileExistsError:
                pass
            except OSError as e:
                raise ByollmError(
                    f"{self.path}: cannot create the run folder ({e.strerror})"
                ) from None
            if fcntl is None:  # pragma: no cover
                return
            lock_path = self.path / LOCK_FILE
            try:
                # never through a symlink: the pid written would truncate the file it names
                flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
                fd = os.open(lock_path, flags, 0o644)
            except OSError as e:
                raise ByollmError(
                    f"{lock_path}: cannot open the lock file ({e.strerror})"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                os.close(fd)
                raise RunInUse(
                    f"{self.path} is being written by another byollm process "
                    f"(pid {holder or 'unknown'}); wait for it to finish or stop it, then retry",
                    holder or "unknown",
                ) from None
            # The file locked must still be the one at lock_path: a run that just finished may
            # have removed it (and its empty folder) between our open and our flock.
            try:
                same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                self._lock_fd = fd
                return
            os.close(fd)
        raise ByollmError(f"{self.path}: could not take the run's lock (the folder keeps changing)")

    def _check_clearable(self) -> None:
        """Refuse --overwrite of a run folder that also holds files byollm did not write."""
        foreign = sorted(p.name for p in self._entries() if not is_run_entry(p.name))
        if foreign:
            shown = ", ".join(foreign[:5]) + (
                f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
            )
            raise ByollmError(
                f"{self.path}: --overwrite deletes only what byollm wrote, and this run folder "
                f"also holds {shown}; move that away first (nothing was deleted)"
            )

    def _clear(self) -> None:
        """Delete what byollm wrote in the folder (for --overwrite); refuse if there is more."""
        self._check_clearable()
        for entry in self._entries():
            try:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            except OSError as e:
                raise ByollmError(
                    f"{entry}: cannot delete it for --overwrite ({e.strerror})"
                ) from None
