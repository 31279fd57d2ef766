"""Prometheus's ``promtool``, to check ``deploy/prometheus/alerts.yaml`` and run its unit tests.

Found on PATH, else in the download cache (``<cache>/prometheus/usr/bin/promtool``), else put
there from Debian's ``prometheus`` package: ``apt-get download`` fetches the .deb (no root,
nothing installed) and ``dpkg-deb -x`` unpacks it into the cache, of which only ``promtool``
is used. Installing the package instead would also install and start a Prometheus server (the
package's service) on a shared machine, and building promtool from the Go module proxy
compiles Prometheus's whole module tree (minutes on two cores) and needs a Go toolchain.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

PACKAGE = "prometheus"
RELATIVE = Path("prometheus") / "usr" / "bin" / "promtool"
RULES = Path(__file__).resolve().parents[1] / "prometheus" / "alerts.yaml"
RULE_TESTS = RULES.with_name("alerts_test.yaml")


class PromtoolError(RuntimeError):
    """promtool cannot be found or fetched; the message says how to provide it."""


def promtool(cache: Path) -> Path:
    """The promtool program, fetched into ``cache`` the first time when not on PATH."""
    found = shutil.which("promtool")
    if found:
        return Path(found)
    target = cache / RELATIVE
    if target.is_file():
        return target
    apt_get, dpkg_deb = shutil.which("apt-get"), shutil.which("dpkg-deb")
    if apt_get is None or dpkg_deb is None:
        raise PromtoolError(
            "promtool is not on PATH and this machine has no apt-get/dpkg-deb to fetch"
            f" Debian's {PACKAGE} package; install Prometheus's promtool (it comes with every"
            " Prometheus release) and put it on PATH"
        )
    with tempfile.TemporaryDirectory() as folder:
        fetched = subprocess.run([apt_get, "download", PACKAGE], cwd=folder,
                                 capture_output=True, text=True, timeout=600)
        packages = sorted(Path(folder).glob(f"{PACKAGE}_*.deb"))
        if fetched.returncode != 0 or not packages:
            raise PromtoolError(
                f"`apt-get download {PACKAGE}` failed ({fetched.stderr.strip()[-300:]}); run"
                " `apt-get update` first, or put promtool on PATH"
            )
        unpacked = cache / "prometheus"
        unpacked.mkdir(parents=True, exist_ok=True)
        subprocess.run([dpkg_deb, "-x", str(packages[-1]), str(unpacked)], check=True,
                       capture_output=True, timeout=300)
    # the server binary is not needed; keep the cache small
    (unpacked / "usr" / "bin" / "prometheus").unlink(missing_ok=True)
    if not target.is_file():
        raise PromtoolError(f"Debian's {PACKAGE} package has no usr/bin/promtool; put"
                            " promtool on PATH")
    return target
