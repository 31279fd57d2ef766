"""Downloading the stack's Java parts from Maven Central, once, into the state cache.

Kafka comes as jars resolved from ``deploy/stack/pom.xml``; Apicurio Registry as its runnable
archive ``io.apicurio:apicurio-registry-app:<version>:tar.gz:all``. Each lands in a temporary
folder first and is renamed into place only when complete, and a ``.complete`` file is
written last: a download cut half-way never counts as installed.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from deploy.stack.layout import (
    KAFKA_VERSION,
    REGISTRY_VERSION,
    REGISTRY_VERSION_FOR_JAVA_17,
    StackError,
    StateLayout,
)
from schemas import config

POM = Path(__file__).with_name("pom.xml")
COMPLETE = ".complete"


def _java_major(java: str) -> int:
    result = subprocess.run([java, "-version"], capture_output=True, text=True)
    match = re.search(r'version "(\d+)', result.stderr + result.stdout)
    return int(match.group(1)) if match else 0


def _java_candidates() -> list[str]:
    chosen = config.java_home()
    if chosen:
        # An explicit choice is the only candidate: the user knows which Java they vetted.
        return [str(chosen / "bin" / "java")]
    candidates = []
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidates.append(str(Path(java_home) / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(on_path)
    candidates += sorted(str(java) for java in Path("/usr/lib/jvm").glob("*/bin/java"))
    return [java for java in dict.fromkeys(candidates) if Path(java).exists()]


@functools.cache
def java_executable(minimum: int = 17) -> str:
    """A ``java`` of at least version ``minimum`` (Kafka needs 17, Apicurio 3.3 needs 21)."""
    for java in _java_candidates():
        if _java_major(java) >= minimum:
            return java
    raise StackError(
        f"no Java {minimum} or newer was found (looked at {config.JAVA_HOME}, JAVA_HOME, PATH "
        f"and /usr/lib/jvm). Kafka needs Java 17 and Apicurio Registry {REGISTRY_VERSION} "
        f"needs Java 21: install one (e.g. Temurin 21 or 25) and set {config.JAVA_HOME} to it."
    )


def maven_executable() -> str:
    maven = shutil.which("mvn")
    if not maven:
        raise StackError(
            "Maven (`mvn`) was not found: the local stack downloads Kafka and Apicurio "
            "Registry from Maven Central with it. Install it (Debian: `apt-get install maven`)."
        )
    return maven


def _run_maven(arguments: list[str], what: str) -> None:
    command = [maven_executable(), "-B", "-q", *arguments]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()[-20:]
        raise StackError(
            f"downloading {what} from Maven Central failed (exit {result.returncode}). "
            "Check that Maven Central is reachable (proxy settings in ~/.m2/settings.xml) "
            "and run `tipsync stack up` again. Maven said:\n" + "\n".join(output)
        )


def is_complete(folder: Path, fingerprint: str) -> bool:
    """Installed, and from the same recipe (a changed pom means a new download)."""
    try:
        return (folder / COMPLETE).read_text().strip() == fingerprint
    except FileNotFoundError:
        return False


def ensure_kafka_jars(layout: StateLayout) -> Path:
    """Kafka's jars (broker, tools, logging binding) in the cache; download when missing."""
    return _dependencies_of(POM, layout, layout.kafka_jars, f"Apache Kafka {KAFKA_VERSION}",
                            f"kafka_2.13-{KAFKA_VERSION}.jar")


def _dependencies_of(pom: Path, layout: StateLayout, target: Path, what: str,
                     required: str) -> Path:
    """The runtime jars ``pom`` names, resolved by Maven into ``target`` in the cache once
    (again when the pom changes); ``required`` is a file name pattern the download must hold."""
    fingerprint = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    if is_complete(target, fingerprint):
        return target
    layout.cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=layout.cache))
    try:
        _run_maven(
            [
                "-f", str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staging}",
                "-DincludeScope=runtime",
            ],
            what,
        )
        if not any(staging.glob(required)):
            raise StackError(
                f"Maven finished but {required} is missing from the download of {what}; run "
                "the command again."
            )
        (staging / COMPLETE).write_text(fingerprint + "\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def kafka_classpath(layout: StateLayout) -> str:
    """The Java classpath of the Kafka broker and its tools (ProducerPerformance, ...)."""
    return str(ensure_kafka_jars(layout) / "*")


def registry_release() -> tuple[str, str]:
    """The Apicurio Registry version to run and the ``java`` to run it with."""
    try:
        return REGISTRY_VERSION, java_executable(minimum=21)
    except StackError:
        return REGISTRY_VERSION_FOR_JAVA_17, java_executable(minimum=17)


def ensure_registry(layout: StateLayout, version: str = REGISTRY_VERSION) -> Path:
    """Apicurio Registry's runnable Quarkus application (its runner jar), unpacked in the cache."""
    target = layout.registry_dist(version)
    if is_complete(target, version):
        return registry_runner(target)
    layout.cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".apicurio-", dir=layout.cache))
    try:
        _run_maven(
            [
                "dependency:copy",
                f"-Dartifact=io.apicurio:apicurio-registry-app:{version}:tar.gz:all",
                f"-DoutputDirectory={staging}",
            ],
            f"Apicurio Registry {version}",
        )
        archives = list(staging.glob("*.tar.gz"))
        if not archives:
            raise StackError("Maven finished but the Apicurio archive is missing; run again.")
        unpacked = staging / "app"
        with tarfile.open(archives[0]) as archive:
            archive.extractall(unpacked, filter="data")
        runner = registry_runner(unpacked)
        (runner.parent / COMPLETE).write_text(version + "\n")
        shutil.rmtree(target, ignore_errors=True)
        runner.parent.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return registry_runner(target)


def registry_runner(folder: Path) -> Path:
    """``quarkus-run.jar`` (3.1 and later) or ``*-runner.jar`` (3.0) inside ``folder``."""
    runner = next(folder.rglob("quarkus-run.jar"), None) or next(folder.rglob("*-runner.jar"), None)
    if runner is None:
        raise StackError(
            f"the Apicurio archive in {folder} has no runnable jar; delete that folder and run "
            "`tipsync stack up` again."
        )
    return runner


CONNECT_POM = Path(__file__).with_name("connect-pom.xml")
CONNECT_FOLDER = "kafka-connect-debezium"  # in the cache, beside Kafka's jars


def ensure_connect_jars(layout: StateLayout) -> Path:
    """Kafka Connect's runtime and the Debezium JDBC sink connector (``connect-pom.xml``) in
    the cache, for ``tipsync bench sink --peers``; downloaded on first use, not by stack up."""
    return _dependencies_of(CONNECT_POM, layout, layout.cache / CONNECT_FOLDER,
                            "Kafka Connect and the Debezium JDBC sink connector",
                            "debezium-connector-jdbc-*.jar")


def connect_classpath(layout: StateLayout) -> str:
    return str(ensure_connect_jars(layout) / "*")
