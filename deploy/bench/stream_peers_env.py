"""The virtual environment of ``bench stream --peers``'s quix-streams application:
``quix-venv`` in the cache folder, made on first use (and again when the pins below change), so
that quix-streams never enters tipsync's own dependencies.

It holds quix-streams at a pinned version, with what it brings (its own confluent-kafka,
pydantic, orjson, httpx, rocksdict), and the few libraries tipsync's decode and check code
imports besides those (``schemas.serde``, ``streams.ingest`` and what they import), at the
versions tipsync's environment has: the application imports that code from tipsync's folder
(``PYTHONPATH``), so both environments run the same decode and check.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

QUIXSTREAMS = "quixstreams==3.28.1"
# tipsync's code the application imports needs these beyond quix-streams' own dependencies
DECODE_IMPORTS = ("fastavro", "pyyaml", "phonenumbers", "rapidfuzz", "jellyfish", "anyascii")
MARKER = "tipsync-requirements.txt"


def requirements() -> list[str]:
    """What the environment is made of: quix-streams pinned, tipsync's imports at the
    versions installed here."""
    return [QUIXSTREAMS, *(f"{name}=={version(name)}" for name in DECODE_IMPORTS)]


def is_current(folder: Path, wanted: list[str]) -> bool:
    marker = folder / MARKER
    python = folder / "bin" / "python"
    return python.exists() and marker.exists() and (
        marker.read_text(encoding="utf-8").split() == wanted)


def quix_python(cache: Path) -> Path:
    """The interpreter of the quix-streams environment under ``cache``, made if need be
    (pip from the package index: a minute or two the first time)."""
    folder = cache / "quix-venv"
    wanted = requirements()
    if is_current(folder, wanted):
        return folder / "bin" / "python"
    print(f"bench stream --peers: making {folder} ({' '.join(wanted)}); once", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
    install = subprocess.run(
        [str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", *wanted],
        capture_output=True, text=True)
    if install.returncode != 0:
        raise RuntimeError(
            f"pip could not install {' '.join(wanted)} into {folder} (exit "
            f"{install.returncode}): {install.stderr.strip()[-800:]}; check that the package "
            "index can be reached, then run the benchmark again")
    (folder / MARKER).write_text("\n".join(wanted) + "\n", encoding="utf-8")
    return folder / "bin" / "python"
