"""Whether the state folder sits on an encrypted volume (docs/SECURITY.md, *At rest*).

Personal data rests in the state folder: Kafka's log segments, PostgreSQL's files, the resolve
snapshots. Neither Kafka nor PostgreSQL 15 can encrypt their files, so the control that covers
every copy is an encrypted volume (dm-crypt/LUKS, or the cloud disk's own encryption) under the
whole folder, with its key off the machine. ``stack up`` and ``stack status`` say whether the
folder is on one; Linux only (``/proc/self/mountinfo`` and ``/sys/dev/block``), elsewhere the
answer is "unknown".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
SYS_BLOCK = Path("/sys/dev/block")
MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs"})


@dataclass(frozen=True)
class Mount:
    point: Path
    device: str  # "major:minor"
    filesystem: str
    source: str


@dataclass(frozen=True)
class AtRest:
    """``encrypted``: True (a dm-crypt layer under the folder), False, or None (cannot tell)."""

    folder: Path
    encrypted: bool | None
    where: str  # the device or filesystem, for messages

    def warning(self) -> str | None:
        """The operator's sentence when the folder is not known to be encrypted, else None."""
        if self.encrypted:
            return None
        state = "is not an encrypted volume" if self.encrypted is False else (
            "could not be checked for encryption")
        return (
            f"state folder {self.folder} is on {self.where}, which {state}: Kafka's segments,"
            " PostgreSQL's files and resolve snapshots hold personal data in clear there. For"
            " real data put the folder on an encrypted volume (docs/SECURITY.md, At rest)."
        )


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts of ``/proc/self/mountinfo`` text (proc(5): fields, ``-``, fstype, source)."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields or len(fields) < 7:
            continue
        separator = fields.index("-")
        point = fields[4].replace("\\040", " ")
        mounts.append(Mount(Path(point), fields[2], fields[separator + 1],
                            fields[separator + 2] if len(fields) > separator + 2 else ""))
    return mounts


def mount_of(folder: Path, mounts: list[Mount]) -> Mount | None:
    """The mount holding ``folder``: the longest mount point above it (the last mounted wins
    for equal points)."""
    best: Mount | None = None
    for mount in mounts:
        holds = folder == mount.point or mount.point in folder.parents
        if holds and (best is None or len(mount.point.parts) >= len(best.point.parts)):
            best = mount
    return best


def device_is_encrypted(device: str, sys_block: Path = SYS_BLOCK, depth: int = 0) -> bool:
    """Whether block device ``major:minor`` is a dm-crypt device or sits on one (LVM on LUKS:
    the logical volume's slaves lead to the crypt device)."""
    node = sys_block / device
    uuid = node / "dm" / "uuid"
    if uuid.is_file() and uuid.read_text().startswith("CRYPT-"):
        return True
    slaves = node / "slaves"
    if depth > 8 or not slaves.is_dir():
        return False
    for slave in slaves.iterdir():
        dev = slave / "dev"
        if dev.is_file() and device_is_encrypted(dev.read_text().strip(), sys_block, depth + 1):
            return True
    return False


def check_folder(folder: Path, mountinfo: Path = MOUNTINFO,
                 sys_block: Path = SYS_BLOCK) -> AtRest:
    folder = folder.resolve()
    try:
        mount = mount_of(folder, parse_mountinfo(mountinfo.read_text()))
    except OSError:
        mount = None
    if mount is None:
        return AtRest(folder, None, "a volume this system does not describe")
    if mount.filesystem in MEMORY_FILESYSTEMS:
        return AtRest(folder, None, f"{mount.filesystem} (memory, and swap if any)")
    if not (sys_block / mount.device).exists():
        return AtRest(folder, None, f"{mount.source or mount.filesystem} ({mount.filesystem})")
    return AtRest(folder, device_is_encrypted(mount.device, sys_block),
                  f"{mount.source} ({mount.filesystem})")
