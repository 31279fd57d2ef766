"""The state folder's volume: encrypted (a dm-crypt layer below it) or not, from the kernel's
own descriptions (mountinfo and /sys/dev/block), here given as files."""

from __future__ import annotations

from pathlib import Path

from deploy.stack.at_rest import check_folder, parse_mountinfo

MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 252:1 / / rw,relatime - ext4 /dev/vda1 rw
40 27 253:2 / /srv/tipsync rw,relatime - ext4 /dev/mapper/vg-tipsync rw
41 27 0:30 / /srv/tipsync/scratch rw - tmpfs tmpfs rw
"""


def _sys_block(root: Path) -> Path:
    block = root / "sys"
    (block / "252:1").mkdir(parents=True)
    lv = block / "253:2"
    (lv / "dm").mkdir(parents=True)
    (lv / "dm" / "uuid").write_text("LVM-abc\n")
    crypt = block / "253:0"
    (crypt / "dm").mkdir(parents=True)
    (crypt / "dm" / "uuid").write_text("CRYPT-LUKS2-0123-cryptroot\n")
    (lv / "slaves" / "dm-0").mkdir(parents=True)
    (lv / "slaves" / "dm-0" / "dev").write_text("253:0\n")
    return block


def test_lvm_on_luks_is_encrypted_and_a_plain_disk_is_not(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(MOUNTINFO)
    block = _sys_block(tmp_path)
    encrypted = check_folder(Path("/srv/tipsync/state"), mountinfo, block)
    assert encrypted.encrypted is True and encrypted.warning() is None
    plain = check_folder(Path("/home/op/tipsync/.tipsync"), mountinfo, block)
    assert plain.encrypted is False
    assert "/dev/vda1" in (plain.warning() or "") and "not an encrypted volume" in (
        plain.warning() or "")
    memory = check_folder(Path("/srv/tipsync/scratch/x"), mountinfo, block)
    assert memory.encrypted is None and "tmpfs" in memory.where


def test_mountinfo_fields_are_read_after_the_separator() -> None:
    mounts = parse_mountinfo(MOUNTINFO)
    assert [(m.point.as_posix(), m.filesystem, m.source) for m in mounts][1] == (
        "/", "ext4", "/dev/vda1")


def test_this_machine_gives_an_answer(tmp_path: Path) -> None:
    verdict = check_folder(tmp_path)
    assert verdict.encrypted in (True, False, None)
    assert verdict.where
