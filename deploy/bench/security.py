"""``tipsync bench security``: what TLS and SASL cost, secure against plaintext, same run.

1. starts a private stack (own state folder and ports, the shared download cache), secure as
   every stack is;
2. opens, for the measurement only, a second listener on it: PLAINTEXT on the Kafka port + 3,
   127.0.0.1, added at run time through the admin API (``listeners`` is a dynamic broker
   setting), with an ACL letting ``User:ANONYMOUS`` (what a PLAINTEXT client is) do anything,
   so both runs pass the same authorizer;
3. runs ``tipsync bench produce`` and ``tipsync bench stream --skip-resolve`` twice each, in
   alternation: once with the admin's SASL_SSL file, once with a PLAINTEXT file naming the
   extra listener;
4. prints the figures side by side and their ratio, then stops the private stack and deletes
   it (the PLAINTEXT listener goes with it: it is never in the stack's configuration file).
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


def open_plaintext_listener(admin_client: Any, port: int) -> None:
    """Add PLAINTEXT://127.0.0.1:<port> to the running broker, and let ANONYMOUS do all."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        ResourcePatternType,
        ResourceType,
    )

    from deploy.stack.acls import _wait

    described = admin_client.describe_configs([ConfigResource(ResourceType.BROKER, "1")])
    current = next(iter(described.values())).result()
    listeners = current["listeners"].value
    protocols = current["listener.security.protocol.map"].value
    advertised = current["advertised.listeners"].value
    plain = f"PLAINTEXT://127.0.0.1:{port}"
    entries = [
        ConfigEntry("listener.security.protocol.map", f"{protocols},PLAINTEXT:PLAINTEXT",
                    incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("listeners", f"{listeners},{plain}",
                    incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("advertised.listeners", f"{advertised},{plain}",
                    incremental_operation=AlterConfigOpType.SET),
    ]
    _wait(admin_client.incremental_alter_configs(
        [ConfigResource(ResourceType.BROKER, "1", incremental_configs=entries)]
    ), "open the measurement's PLAINTEXT listener")
    bindings = [
        AclBinding(resource, "*", ResourcePatternType.LITERAL, "User:ANONYMOUS", "*",
                   AclOperation.ALL, AclPermissionType.ALLOW)
        for resource in (ResourceType.TOPIC, ResourceType.GROUP)
    ] + [AclBinding(ResourceType.BROKER, "kafka-cluster", ResourcePatternType.LITERAL,
                    "User:ANONYMOUS", "*", AclOperation.ALL, AclPermissionType.ALLOW)]
    _wait(admin_client.create_acls(bindings), "let ANONYMOUS use the PLAINTEXT listener")


def _tipsync(env: dict[str, str], *arguments: str, timeout: float = 3600) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "deploy.cli", *arguments], env=env,
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"`tipsync {' '.join(arguments)}` failed:\n{result.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def run_bench(args: argparse.Namespace) -> int:
    from confluent_kafka.admin import AdminClient

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
        admin_file = config.local_client_file(home, config.DEFAULT_PRINCIPAL)
        secure = load_settings({**env, config.CLIENT_CONFIG: str(admin_file)}).client
        port = args.kafka_port + PLAINTEXT_OFFSET
        open_plaintext_listener(AdminClient(secure.librdkafka()), port)
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
