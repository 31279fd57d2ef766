"""Checking the Kubernetes manifests offline: kubeconform and the schemas it checks against.

Nothing comes from a host other than the package registries:

- kubeconform from the Go module proxy (``go install``), into ``<cache>/bin``;
- Kubernetes' own kinds from the PyPI package ``kubernetes-validate`` (a dev dependency),
  which ships kubeconform-shaped JSON schemas (``<kind>-<group>-<version>.json`` with
  ``_definitions.json``) for every recent Kubernetes release, strict ones too;
- Strimzi's CRDs from deploy/kubernetes/crds/ (copied from Strimzi's release tag: neither
  Maven Central's ``io.strimzi:api`` jar nor any registry ships them as files);
- CloudNativePG's CRDs from its Go module (``go mod download``, ``config/crd/bases``).

The CRDs' ``openAPIV3Schema`` become JSON schemas the way kubeconform's openapi2jsonschema
does it, strict: an object with named properties refuses any other property, unless the CRD
says it keeps unknown fields.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from deploy.operations.manifests_cluster import CNPG_VERSION, STRIMZI_VERSION

KUBECONFORM_MODULE = "github.com/yannh/kubeconform/cmd/kubeconform"
KUBECONFORM_VERSION = "v0.7.0"
CNPG_MODULE = "github.com/cloudnative-pg/cloudnative-pg"
KUBERNETES_VERSION = "1.33.0"
STRIMZI_CRDS = Path(__file__).resolve().parents[1] / "kubernetes" / "crds" / (
    f"strimzi-{STRIMZI_VERSION}"
)
CNPG_KINDS = ("clusters", "databases")


class SchemaError(RuntimeError):
    """A tool or schema could not be had; the message says which and how to get it."""


def _go() -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").is_file()
                                else None)
    if go is None:
        raise SchemaError(
            "checking the Kubernetes manifests needs Go (to install kubeconform from the Go"
            " module proxy); install it (Debian: apt-get install golang) and run again"
        )
    return go


def _run_go(arguments: list[str], environment: dict[str, str]) -> str:
    result = subprocess.run([_go(), *arguments], capture_output=True, text=True,
                            env={**os.environ, **environment})
    if result.returncode != 0:
        raise SchemaError(f"`go {' '.join(arguments)}` failed:\n{result.stderr.strip()}")
    return result.stdout


def kubeconform(cache: Path) -> Path:
    """kubeconform, installed into ``<cache>/bin`` once."""
    binary = cache / "bin" / f"kubeconform-{KUBECONFORM_VERSION}"
    if binary.is_file():
        return binary
    build = cache / "bin" / "kubeconform-build"
    build.mkdir(parents=True, exist_ok=True)
    _run_go(["install", f"{KUBECONFORM_MODULE}@{KUBECONFORM_VERSION}"], {"GOBIN": str(build)})
    (build / "kubeconform").replace(binary)
    return binary


def kubernetes_schemas(cache: Path, version: str = KUBERNETES_VERSION) -> Path:
    """The strict schemas of Kubernetes ``version``'s own kinds (kubernetes-validate's),
    copied into the cache with their references made relative to the file: the package gives
    each schema an ``$id`` under kubernetes.io and names its shared definitions
    ``/api/_definitions.json`` (addresses its own validator maps), which kubeconform would
    fetch from the network."""
    target = cache / "kubernetes-schemas" / f"kubernetes-{version}-strict"
    if (target / ".complete").is_file():
        return target
    try:
        import kubernetes_validate
    except ImportError:
        raise SchemaError(
            "the Kubernetes schemas come with the Python package kubernetes-validate; install"
            " the dev dependencies (pip install -e '.[dev]')"
        ) from None
    folder = (Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
              / f"v{version}-local-strict")
    if not folder.is_dir():
        raise SchemaError(f"kubernetes-validate has no schemas for Kubernetes {version}")
    target.mkdir(parents=True, exist_ok=True)
    for source in folder.glob("*.json"):
        schema = json.loads(source.read_text(encoding="utf-8"))
        schema.pop("$id", None)  # its base would send the references to kubernetes.io
        text = json.dumps(schema).replace('"/api/_definitions.json#', '"_definitions.json#')
        (target / source.name).write_text(text, encoding="utf-8")
    (target / ".complete").write_text("1\n")
    return target


def _strict(schema: Any) -> Any:
    """``schema`` with every object of named properties closed to others (openapi2jsonschema
    ``--strict``), unless it keeps unknown fields (``x-kubernetes-preserve-unknown-fields``)."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    found = {key: _strict(value) for key, value in schema.items()}
    if ("properties" in found and "additionalProperties" not in found
            and not found.get("x-kubernetes-preserve-unknown-fields")):
        found["additionalProperties"] = False
    return found


def crd_schemas(documents: Iterable[Any]) -> dict[str, Any]:
    """``<group>/<kind>_<version>.json`` -> JSON schema, for every served version of every
    CustomResourceDefinition in ``documents`` (kubeconform's ``-schema-location`` template
    ``{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json``)."""
    found = {}
    for document in documents:
        if not isinstance(document, dict) or document.get("kind") != "CustomResourceDefinition":
            continue
        spec = document["spec"]
        kind = spec["names"]["kind"].lower()
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            schema = _strict(version["schema"]["openAPIV3Schema"])
            # apiVersion, kind and metadata are checked by the API server, not the CRD.
            schema.setdefault("properties", {}).update({
                "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                "metadata": {"type": "object"},
            })
            found[f"{spec['group']}/{kind}_{version['name']}.json"] = schema
    return found


def _cnpg_crds(cache: Path) -> list[Path]:
    modules = cache / "go-modules"
    listing = _run_go(["mod", "download", "-json", f"{CNPG_MODULE}@v{CNPG_VERSION}"],
                      {"GOMODCACHE": str(modules), "GOFLAGS": "-modcacherw"})
    folder = Path(json.loads(listing)["Dir"]) / "config" / "crd" / "bases"
    return [folder / f"postgresql.cnpg.io_{kind}.yaml" for kind in CNPG_KINDS]


def custom_schemas(cache: Path) -> Path:
    """Strimzi's and CloudNativePG's CRDs as JSON schemas, in ``<cache>/kubernetes-schemas``
    (made once per pair of versions)."""
    folder = cache / "kubernetes-schemas" / f"strimzi-{STRIMZI_VERSION}-cnpg-{CNPG_VERSION}"
    if (folder / ".complete").is_file():
        return folder
    sources = [*sorted(STRIMZI_CRDS.glob("*.yaml")), *_cnpg_crds(cache)]
    documents = [document for source in sources
                 for document in yaml.safe_load_all(source.read_text(encoding="utf-8"))]
    for name, schema in crd_schemas(documents).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema), encoding="utf-8")
    (folder / ".complete").write_text("1\n")
    return folder


def validate(manifests: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    """Run kubeconform, strict, offline, over every file in ``manifests``; a kind with no
    schema is an error, not a skip."""
    return subprocess.run(
        [
            str(kubeconform(cache)), "-strict", "-summary", "-output", "text",
            "-schema-location",
            str(kubernetes_schemas(cache)) + "/{{ .ResourceKind }}{{ .KindSuffix }}.json",
            "-schema-location",
            str(custom_schemas(cache))
            + "/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json",
            str(manifests),
        ],
        capture_output=True, text=True,
    )
