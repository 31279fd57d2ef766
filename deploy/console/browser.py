"""A real browser for the console's tests and screenshots: Debian's ``chromium`` and
``chromium-driver``, installed with apt-get when missing (as ``stack up`` installs pgaudit),
and the switches a headless Chromium needs on a closed network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from selenium.webdriver.chrome.options import Options

from deploy.stack.layout import StackError

PACKAGES = ("chromium", "chromium-driver")
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Headless, no sandbox (root in a container), and nothing that reaches for the network: the
# machine has none, and a browser that tries waits for timeouts.
SWITCHES = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", "--disable-extensions",
            "--disable-default-apps", "--no-default-browser-check")


def ensure_chromium() -> tuple[Path, Path]:
    """The browser and its driver, installed with apt-get when missing and we are root;
    otherwise ``StackError`` says what to install."""
    if CHROMIUM.is_file() and CHROMEDRIVER.is_file():
        return CHROMIUM, CHROMEDRIVER
    apt_get = shutil.which("apt-get")
    if os.geteuid() != 0 or apt_get is None:
        raise StackError(
            f"the console's browser tests need Chromium and its driver ({CHROMIUM},"
            f" {CHROMEDRIVER}); install them as root (Debian: `apt-get install"
            f" {' '.join(PACKAGES)}`) and run the tests again"
        )
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in ([apt_get, "update", "-qq"],
                    [apt_get, "install", "-y", "-qq", "--no-install-recommends", *PACKAGES]):
        result = subprocess.run(command, capture_output=True, text=True, env=environment)
        if result.returncode != 0:
            raise StackError(
                f"installing {' '.join(PACKAGES)} failed (`{' '.join(command[1:])}` exit"
                f" {result.returncode}): {result.stderr.strip()[-800:]}; install them by hand"
            )
    return CHROMIUM, CHROMEDRIVER


def chromium_options(chromium: Path, profile: Path, server_key_pin: str) -> Options:
    """Options for a fresh headless Chromium that trusts the console's server key, and only
    it, beyond the system's CAs (``--ignore-certificate-errors-spki-list``, which Chromium
    honours only with a ``--user-data-dir``: a fresh one per browser)."""
    options = Options()
    options.binary_location = str(chromium)
    for switch in SWITCHES:
        options.add_argument(switch)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--ignore-certificate-errors-spki-list={server_key_pin}")
    return options
