"""``tipsync bench security``: what TLS and SASL cost, secure against plaintext, same run.

1. starts a private stack (own state folder and ports, the shared download cache), secure as
   every stack is;
2. restarts its Kafka with, for the measurement only, a second listener: PLAINTEXT on the
   Kafka port + 3, 127.0.0.1, and an ACL letting ``User:ANONYMOUS`` (what a PLAINTEXT client
   is) do anything on topics and groups, so both runs pass the same authorizer;
3. runs ``tipsync bench produce`` and ``tipsync bench stream --skip-resolve`` twice each, in
   alternation: once with the admin's SASL_SSL file, once with a PLAINTEXT file naming the
   extra listener;
4. prints the figures side by side and their ratio, then stops the private stack and deletes
   it (the PLAINTEXT listener lives only in that stack's configuration, deleted with it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from deploy.stack.acls import wait_all
from deploy.stack.kafka import Kafka, KafkaNode
from deploy.stack.layout import StateLayout
from deploy.stack.processes import port_is_free
from schemas import config
from schemas.config import Settings, load_settings

PRIVATE_PORTS = {"kafka": 23092, "registry": 23081, "postgres": 23032}
PLAINTEXT_OFFSET = 3  # Kafka port + 3 (+ 1 is the controller's)


def register_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=200_000, help="bench produce --rows")
    parser.add_argument("--events", type=int, default=50_000, help="bench stream --events")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per mode")
    parser.add_argument("--kafka-port", type=int, default=PRIVATE_PORTS["kafka"])
    parser.add_argument("--registry-port", type=int, default=PRIVATE_PORTS["registry"])
    parser.add_argument("--postgres-port", type=int, default=PRIVATE_PORTS["postgres"])


def private_settings(shared: Settings, home: Path, args: argparse.Namespace) -> Settings:
    return Settings(
        home=home, cache=shared.cache, kafka_bootstrap=f"127.0.0.1:{args.kafka_port}",
        registry_url=f"http://127.0.0.1:{args.registry_port}/apis/ccompat/v7",
        database_url=(f"postgresql://tipsync@127.0.0.1:{args.postgres_port}/tipsync"
                      f"?passfile={home / 'secrets' / 'pgpass'}"),
    )


class MeasuredKafka(Kafka):
    """The private stack's Kafka with one more listener: PLAINTEXT on ``plaintext_port``.
    (``advertised.listeners`` cannot change at run time in KRaft, so Kafka restarts with it.)"""

    plaintext_port = 0

    def _security(self, node: KafkaNode | None = None) -> list[str]:
        plain = f"PLAINTEXT://127.0.0.1:{self.plaintext_port}"
        lines = []
        for line in super()._security(node):
            key, _, value = line.partition("=")
            if key in ("listeners", "advertised.listeners"):
                line = f"{key}={value},{plain}"
            elif key == "listener.security.protocol.map":
                line = f"{key}={value},PLAINTEXT:PLAINTEXT"
            lines.append(line)
        return lines


def open_plaintext_listener(settings: Settings, port: int) -> None:
    """Restart the private stack's Kafka with a PLAINTEXT listener on ``port`` and let
    ``User:ANONYMOUS`` (every PLAINTEXT client) do anything on topics and groups."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
    )

    kafka = MeasuredKafka(settings, StateLayout.of(settings))
    kafka.plaintext_port = port
    kafka.stop()
    deadline = time.monotonic() + 60
    while not port_is_free(kafka.port) and time.monotonic() < deadline:
        time.sleep(0.5)
    kafka.start()
    kafka.wait()
    bindings = [
        AclBinding(resource, "*", ResourcePatternType.LITERAL, "User:ANONYMOUS", "*",
                   AclOperation.ALL, AclPermissionType.ALLOW)
        for resource in (ResourceType.TOPIC, ResourceType.GROUP)
    ]
    admin = AdminClient(kafka.admin_client().librdkafka())
    wait_all(admin.create_acls(bindings), "let ANONYMOUS use the PLAINTEXT listener")


def _tipsync(env: dict[str, str], *arguments: str, timeout: float = 3600) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "deploy.cli", *arguments], env=env,
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"`tipsync {' '.join(arguments)}` failed:\n{result.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def run_bench(args: argparse.Namespace) -> int:
    shared = load_settings()
    home = shared.home / "bench-security"
    settings = private_settings(shared, home, args)
    env = {**os.environ, **config.connection_environment(settings)}
    began = time.monotonic()
    figures: dict[str, Any] = {"benchmark": "security", "nproc": os.cpu_count(),
                               "load_average_start": [round(v, 2) for v in os.getloadavg()]}
    try:
        up = subprocess.run([sys.executable, "-m", "deploy.cli", "stack", "up"], env=env,
                            capture_output=True, text=True, timeout=600)
        if up.returncode != 0:
            print(f"tipsync bench security: stack up failed:\n{up.stderr}", file=sys.stderr)
            return 1
        registered = subprocess.run(
            [sys.executable, "-m", "deploy.cli", "schemas", "register"], env=env,
            capture_output=True, text=True, timeout=600,
        )
        if registered.returncode != 0:
            print(f"tipsync bench security: schemas register failed:\n{registered.stderr}",
                  file=sys.stderr)
            return 1
        admin_file = config.local_client_file(home, config.DEFAULT_PRINCIPAL)
        port = args.kafka_port + PLAINTEXT_OFFSET
        open_plaintext_listener(settings, port)
        plain_file = home / "plaintext.properties"
        plain_file.write_text(f"bootstrap.servers=127.0.0.1:{port}\nsecurity.protocol=PLAINTEXT\n"
                              f"schema.registry.url={settings.registry_url}\n")
        files = {"sasl_ssl": admin_file, "plaintext": plain_file}
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {
            mode: {"produce": [], "stream": []} for mode in files}
        for round_number in range(args.rounds):
            for mode, path in files.items():
                mode_env = {**env, config.CLIENT_CONFIG: str(path)}
                runs[mode]["produce"].append(_tipsync(
                    mode_env, "bench", "produce", "--rows", str(args.rows)))
                runs[mode]["stream"].append(_tipsync(
                    mode_env, "bench", "stream", "--events", str(args.events),
                    "--skip-resolve", "--store", "memory"))
                print(f"round {round_number + 1}, {mode}: done", flush=True)
        figures["runs"] = runs
        figures["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
        figures["seconds"] = round(time.monotonic() - began)
        _print_table(runs)
        print(json.dumps(figures), flush=True)
        return 0
    finally:
        subprocess.run([sys.executable, "-m", "deploy.cli", "stack", "down"], env=env,
                       capture_output=True, timeout=300)
        shutil.rmtree(home, ignore_errors=True)


def _print_table(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    for mode, measured in runs.items():
        produce = [run["python"]["events_per_second"] for run in measured["produce"]]
        java = [run["java"]["records_per_second"] for run in measured["produce"] if "java" in run]
        print(f"{mode:<10} tipsync produce events/s {produce}; Java ProducerPerformance"
              f" records/s {java}")
        for run in measured["stream"]:
            print(f"{mode:<10} stream: {json.dumps(run.get('ingest', run))[:300]}")
