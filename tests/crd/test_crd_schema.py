"""Offline checks of the AgentRollout CustomResourceDefinition (crds/agentrollouts.cloudeye.dev.yaml).

No Kubernetes API server is needed. What is checked here, and how faithfully:

- the YAML parses and is a structural schema by the API server's rules (re-implemented below for the
  parts this CRD uses: types everywhere, the int-or-string exception, metadata, no
  preserve-unknown-fields);
- every field of DESIGN.md is present, typed, described (for `kubectl explain`) and defaulted as
  documented; the patterns agree with cloudeye/models.py;
- manifests (the shipped examples and hand-made ones) are validated against openAPIV3Schema with the
  `jsonschema` library. Unknown fields are treated as errors, as `kubectl apply`'s default strict
  field validation does; defaults are applied first with the API server's algorithm;
- the CEL rules (x-kubernetes-validations) exist with their messages, and are evaluated with
  `cel-python` (celpy), a CEL implementation independent of the API server's cel-go.

What only a real API server can prove (left to the end-to-end suite): that it accepts the CRD, the
CEL cost estimate, list-map uniqueness and pruning as it implements them, and the printer columns.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudeye_operator.cloudeye import models
from cloudeye_operator.rollout.spec import MAX_IN_FLIGHT

# Optional test dependencies: without them the tests that need them are skipped, the rest still run.
try:
    import jsonschema
except ImportError:  # pragma: no cover
    jsonschema = None
try:
    import celpy
except ImportError:  # pragma: no cover
    celpy = None

needs_jsonschema = pytest.mark.skipif(jsonschema is None, reason="pip install jsonschema (test extra)")
needs_celpy = pytest.mark.skipif(
    jsonschema is None or celpy is None, reason="pip install jsonschema cel-python (test extras)"
)

REPO = Path(__file__).resolve().parents[2]
CRD_PATH = REPO / "crds" / "agentrollouts.cloudeye.dev.yaml"
EXAMPLES_DIR = REPO / "deploy" / "examples"
# The AgentRollout examples (the folder also holds the Secret they point at).
EXAMPLES = sorted(p for p in EXAMPLES_DIR.glob("*.yaml") if "kind: AgentRollout" in p.read_text())

MAX_INSTANCES = 10_000

# --- Loading ---------------------------------------------------------------------------------------


def _load_crd() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(CRD_PATH.read_text(encoding="utf-8")) if d is not None]
    assert len(docs) == 1, "the CRD file holds exactly one document"
    return docs[0]


CRD = _load_crd()
VERSION = CRD["spec"]["versions"][0]
SCHEMA: dict[str, Any] = VERSION["schema"]["openAPIV3Schema"]


def node(path: str) -> dict[str, Any]:
    """The schema node at a dotted path: `spec.strategy.retry.limit`; `[]` is an item, `{}` a map value."""
    current = SCHEMA
    for part in path.split("."):
        if part == "[]":
            current = current["items"]
        elif part == "{}":
            current = current["additionalProperties"]
        else:
            current = current["properties"][part]
    return current


def walk(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its dotted path (properties, array items, map values)."""
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}" if path else name)
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}.[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}.{{}}")


def ids(value: Any) -> str | None:
    """Test ids for (path, node) parameters: the path names the case."""
    if isinstance(value, str):
        return value or "<root>"
    return None


def load_example(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def minimal(**spec: Any) -> dict[str, Any]:
    """A valid AgentRollout with `spec` overriding the minimal one (a None value removes the field)."""
    base: dict[str, Any] = {"action": "INSTALL", "instances": [{"id": "ecs-0001"}]}
    base.update(spec)
    base = {key: value for key, value in base.items() if value is not None}
    return {
        "apiVersion": "cloudeye.dev/v1alpha1",
        "kind": "AgentRollout",
        "metadata": {"name": "t", "namespace": "default"},
        "spec": base,
    }


# --- What the API server does, re-implemented for offline use ---------------------------------------


def apply_defaults(value: Any, schema: dict[str, Any]) -> Any:
    """Structural defaulting as the API server does it: a missing property takes its default, then
    defaulting recurses into it, so nested defaults apply inside a defaulted `{}`."""
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name, prop in props.items():
            if "default" in prop and name not in value:
                value[name] = copy.deepcopy(prop["default"])
        for name, child in value.items():
            if name in props:
                apply_defaults(child, props[name])
            elif isinstance(schema.get("additionalProperties"), dict):
                apply_defaults(child, schema["additionalProperties"])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(item, schema["items"])
    return value


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy in which objects refuse unknown fields, as strict field validation does (the API server
    would otherwise prune them silently). `metadata` stays open: the server validates it itself."""
    out = copy.deepcopy(schema)
    for path, sub in walk(out):
        if path == "metadata":
            continue
        if "properties" in sub and "additionalProperties" not in sub:
            sub["additionalProperties"] = False
    return out


def list_map_errors(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """x-kubernetes-list-type map/set: duplicate keys are rejected by the API server."""
    errors: list[str] = []
    if isinstance(value, list):
        kind = schema.get("x-kubernetes-list-type")
        if kind == "map":
            keys = [tuple(item.get(k) for k in schema["x-kubernetes-list-map-keys"]) for item in value]
            if len(keys) != len(set(keys)):
                errors.append(f"{path}: Duplicate value")
        elif kind == "set" and len(value) != len(set(map(repr, value))):
            errors.append(f"{path}: Duplicate value")
        for i, item in enumerate(value):
            errors += list_map_errors(item, schema.get("items", {}), f"{path}[{i}]")
    elif isinstance(value, dict):
        for name, child in value.items():
            sub = schema.get("properties", {}).get(name) or schema.get("additionalProperties")
            if isinstance(sub, dict):
                errors += list_map_errors(child, sub, f"{path}.{name}")
    return errors


# --- The CRD's identity ------------------------------------------------------------------------------


def test_identity() -> None:
    assert CRD["apiVersion"] == "apiextensions.k8s.io/v1"
    assert CRD["kind"] == "CustomResourceDefinition"
    spec = CRD["spec"]
    assert (
        CRD["metadata"]["name"]
        == f"{spec['names']['plural']}.{spec['group']}"
        == "agentrollouts.cloudeye.dev"
    )
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "AgentRollout",
        "listKind": "AgentRolloutList",
        "plural": "agentrollouts",
        "singular": "agentrollout",
        "shortNames": ["ar"],
        "categories": ["cloudeye"],
    }
    assert len(spec["versions"]) == 1
    assert VERSION["name"] == "v1alpha1"
    assert VERSION["served"] is True
    assert VERSION["storage"] is True
    assert VERSION["subresources"] == {"status": {}}


# --- Structural schema ------------------------------------------------------------------------------

INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]


def test_root_is_object_with_spec_required() -> None:
    assert SCHEMA["type"] == "object"
    assert "additionalProperties" not in SCHEMA
    assert SCHEMA["required"] == ["spec"]
    assert SCHEMA["properties"]["apiVersion"]["type"] == "string"
    assert SCHEMA["properties"]["kind"]["type"] == "string"


def test_metadata_specifies_nothing_but_its_type() -> None:
    # The API server rejects anything else under metadata, a description included.
    assert SCHEMA["properties"]["metadata"] == {"type": "object"}


@pytest.mark.parametrize(("path", "sub"), list(walk(SCHEMA)), ids=ids)
def test_every_node_is_structural(path: str, sub: dict[str, Any]) -> None:
    if sub.get("x-kubernetes-int-or-string"):
        assert "type" not in sub, f"{path}: int-or-string must not have a type"
        assert sub.get("anyOf") == INT_OR_STRING_ANY_OF, f"{path}: the only anyOf allowed is integer|string"
    else:
        assert sub.get("type") in {"object", "array", "string", "integer", "number", "boolean"}, path
        assert "anyOf" not in sub, path
    for quantifier in ("allOf", "oneOf", "not"):
        assert quantifier not in sub, f"{path}: {quantifier} is not used in this CRD"
    assert "x-kubernetes-preserve-unknown-fields" not in sub, f"{path}: every field is typed"
    assert "x-kubernetes-embedded-resource" not in sub, path
    assert "nullable" not in sub, path
    if sub.get("type") == "array":
        assert isinstance(sub.get("items"), dict), f"{path}: an array needs items"
    if "properties" in sub or "additionalProperties" in sub:
        assert sub.get("type") == "object", path
    if "additionalProperties" in sub:
        assert "properties" not in sub, f"{path}: properties and additionalProperties are exclusive"
        assert isinstance(sub["additionalProperties"], dict), path
    if "pattern" in sub:
        re.compile(sub["pattern"])
        # Go's RE2 has no look-around or back-references.
        assert not re.search(r"\(\?[=!<]|\\[1-9]", sub["pattern"]), path
    for name in sub.get("required", []):
        assert name in sub.get("properties", {}), f"{path}: required {name} is not a property"


@pytest.mark.parametrize(("path", "sub"), list(walk(SCHEMA)), ids=ids)
def test_every_node_has_a_description(path: str, sub: dict[str, Any]) -> None:
    if path == "metadata":
        return
    description = sub.get("description", "")
    assert isinstance(description, str), path
    assert len(description) >= 10, f"{path}: `kubectl explain` needs a description"


def test_status_is_typed_not_preserved() -> None:
    status = node("status")
    assert status["type"] == "object"
    assert "x-kubernetes-preserve-unknown-fields" not in status
    assert set(status["properties"]) == {
        "observedGeneration",
        "phase",
        "revision",
        "revisionKey",
        "startedAt",
        "lastProgressAt",
        "deadlineExceededGeneration",
        "consecutiveErrors",
        "apiError",
        "summary",
        "instances",
        "conditions",
        "intents",
        "resolvedVersion",
        "driftCheckedAt",
        "driftFound",
        "driftRepaired",
        "selection",
        "waveEndedAt",
        "nextWindowAt",
    }


def test_list_types() -> None:
    # Atomic, not keyed: a keyed list (or map) records each of its keys in metadata.managedFields, ~76
    # bytes per server, and at 10,000 servers server-side apply then fails as too large (measured in
    # tests/e2e/test_large_rollout.py). The operator checks that ids are unique.
    instances = node("spec.instances")
    assert instances["x-kubernetes-list-type"] == "atomic"
    assert "x-kubernetes-list-map-keys" not in instances
    assert "id" in instances["items"]["required"]
    assert node("status.instances")["x-kubernetes-map-type"] == "atomic"
    conditions = node("status.conditions")
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert "type" in conditions["items"]["required"]
    assert node("spec.strategy.retry.onStatuses")["x-kubernetes-list-type"] == "set"


# --- Fields, types, bounds and defaults -------------------------------------------------------------

SPEC_FIELDS = {
    # path: (type, required among its siblings)
    "spec.action": ("string", True),
    "spec.instances": ("array", False),
    "spec.instances.[].id": ("string", True),
    "spec.instances.[].type": ("string", False),
    "spec.selector": ("object", False),
    "spec.selector.tags": ("object", False),
    "spec.selector.tags.{}": ("string", False),
    "spec.selector.enterpriseProjectId": ("string", False),
    "spec.selector.name": ("string", False),
    "spec.selector.status": ("string", False),
    "spec.selector.type": ("string", False),
    "spec.selector.intervalSeconds": ("integer", False),
    "spec.versionType": ("string", False),
    "spec.version": ("string", False),
    "spec.cloud": ("object", False),
    "spec.cloud.region": ("string", False),
    "spec.cloud.projectId": ("string", False),
    "spec.cloud.endpoint": ("string", False),
    "spec.cloud.credentialsSecretRef": ("object", False),
    "spec.cloud.credentialsSecretRef.name": ("string", True),
    "spec.strategy": ("object", False),
    "spec.strategy.maxInFlight": ("int-or-string", False),
    "spec.strategy.maxFailures": ("int-or-string", False),
    "spec.strategy.retry": ("object", False),
    "spec.strategy.retry.limit": ("integer", False),
    "spec.strategy.retry.backoffSeconds": ("integer", False),
    "spec.strategy.retry.onStatuses": ("array", False),
    "spec.strategy.pollIntervalSeconds": ("integer", False),
    "spec.strategy.progressDeadlineSeconds": ("integer", False),
    "spec.strategy.rollbackOnFailure": ("boolean", False),
    "spec.strategy.verifyTimeoutSeconds": ("integer", False),
    "spec.strategy.windows": ("array", False),
    "spec.strategy.windows.[].days": ("array", False),
    "spec.strategy.windows.[].startTime": ("string", True),
    "spec.strategy.windows.[].endTime": ("string", True),
    "spec.strategy.windows.[].timeZone": ("string", False),
    "spec.strategy.soakSeconds": ("integer", False),
    "spec.drift": ("object", False),
    "spec.drift.intervalSeconds": ("integer", False),
    "spec.drift.mode": ("string", False),
    "spec.paused": ("boolean", False),
}


@pytest.mark.parametrize(("path", "expected"), SPEC_FIELDS.items())
def test_spec_field(path: str, expected: tuple[str, bool]) -> None:
    kind, required = expected
    sub = node(path)
    if kind == "int-or-string":
        assert sub.get("x-kubernetes-int-or-string") is True
    else:
        assert sub["type"] == kind
    parent_path, _, name = path.rpartition(".")
    parent = node(parent_path)  # for `x.[].id` the parent is the item, which holds `required`
    assert (name in parent.get("required", [])) is required


def test_no_undocumented_spec_fields() -> None:
    documented = set(SPEC_FIELDS)
    present = {path for path, _ in walk(node("spec"), "spec") if path != "spec"}
    present = {p for p in present if not p.endswith(".[]")}
    assert present == documented


DEFAULTS = {
    "spec.selector.status": "ACTIVE",
    "spec.selector.type": "ECS",
    "spec.selector.intervalSeconds": 300,
    "spec.strategy": {},
    "spec.strategy.maxInFlight": 100,
    "spec.strategy.maxFailures": 0,
    "spec.strategy.retry": {},
    "spec.strategy.retry.limit": 3,
    "spec.strategy.retry.backoffSeconds": 30,
    "spec.strategy.retry.onStatuses": ["FAILED", "TIMEOUT"],
    "spec.strategy.pollIntervalSeconds": 15,
    "spec.strategy.progressDeadlineSeconds": 3600,
    "spec.strategy.rollbackOnFailure": False,
    "spec.strategy.verifyTimeoutSeconds": 300,
    "spec.strategy.windows.[].timeZone": "UTC",
    "spec.strategy.soakSeconds": 0,
    "spec.drift": {},
    "spec.drift.intervalSeconds": 300,
    "spec.drift.mode": "Repair",
    "spec.paused": False,
    "status": {"observedGeneration": 0},  # not yet observed, for kstatus (see the CRD comment)
}


def test_defaults_are_as_documented() -> None:
    found = {path: sub["default"] for path, sub in walk(SCHEMA) if "default" in sub}
    assert found == DEFAULTS


def test_defaults_apply_when_strategy_is_left_out() -> None:
    obj = apply_defaults(minimal(), SCHEMA)
    assert obj["spec"]["paused"] is False
    assert obj["spec"]["strategy"] == {
        "maxInFlight": 100,
        "maxFailures": 0,
        "retry": {"limit": 3, "backoffSeconds": 30, "onStatuses": ["FAILED", "TIMEOUT"]},
        "pollIntervalSeconds": 15,
        "progressDeadlineSeconds": 3600,
        "rollbackOnFailure": False,
        "verifyTimeoutSeconds": 300,
        "soakSeconds": 0,
    }
    assert obj["spec"]["drift"] == {"intervalSeconds": 300, "mode": "Repair"}
    assert "cloud" not in obj["spec"], "cloud has no default: the operator-wide defaults apply"


def test_defaults_fill_a_partial_strategy() -> None:
    obj = apply_defaults(minimal(strategy={"maxInFlight": "25%", "retry": {"limit": 5}}), SCHEMA)
    strategy = obj["spec"]["strategy"]
    assert strategy["maxInFlight"] == "25%"
    assert strategy["maxFailures"] == 0
    assert strategy["retry"] == {"limit": 5, "backoffSeconds": 30, "onStatuses": ["FAILED", "TIMEOUT"]}


def test_an_empty_retry_on_statuses_is_kept() -> None:
    obj = apply_defaults(minimal(strategy={"retry": {"onStatuses": []}}), SCHEMA)
    assert obj["spec"]["strategy"]["retry"]["onStatuses"] == []


BOUNDS = {
    # path: {keyword: value}
    "spec.instances": {"minItems": 1, "maxItems": MAX_INSTANCES},
    "spec.instances.[].id": {"minLength": 1, "maxLength": 64},
    "spec.version": {"minLength": 1, "maxLength": models.MAX_VERSION_LENGTH},
    "spec.cloud.projectId": {"minLength": 1, "maxLength": 64},
    "spec.cloud.credentialsSecretRef.name": {"maxLength": 253},
    "spec.strategy.maxInFlight": {"minimum": 1, "maximum": MAX_IN_FLIGHT},
    "spec.strategy.maxFailures": {"minimum": 0},
    "spec.strategy.retry.limit": {"minimum": 0, "maximum": 20},
    "spec.strategy.retry.backoffSeconds": {"minimum": 0, "maximum": 86400},
    "spec.strategy.pollIntervalSeconds": {"minimum": 1, "maximum": 3600},
    "spec.strategy.progressDeadlineSeconds": {"minimum": 60, "maximum": 604800},
    "status.instances": {"maxProperties": MAX_INSTANCES},
    # One intent holds every start of a cycle (up to maxInFlight); the client splits it into calls of 100.
    "status.intents.{}.instanceIds": {"maxItems": MAX_INSTANCES},
    "status.intents.{}.invocationIds": {"maxItems": MAX_INSTANCES},
}


@pytest.mark.parametrize(("path", "bounds"), BOUNDS.items())
def test_bounds(path: str, bounds: dict[str, int]) -> None:
    sub = node(path)
    for keyword, value in bounds.items():
        assert sub[keyword] == value, f"{path}.{keyword}"


ENUMS = {
    "spec.action": ["INSTALL", "UPDATE", "ROLLBACK"],
    "spec.instances.[].type": [t.value for t in models.InstanceType],
    "spec.versionType": [t.value for t in models.VersionType],
    "spec.strategy.retry.onStatuses.[]": ["FAILED", "TIMEOUT"],
    "status.phase": ["Pending", "Progressing", "Paused", "Succeeded", "Failed", "Stalled"],
    "status.conditions.[].status": ["True", "False", "Unknown"],
    "status.intents.{}.action": [t.value for t in models.InvocationType],
}


@pytest.mark.parametrize(("path", "values"), ENUMS.items())
def test_enums(path: str, values: list[str]) -> None:
    assert node(path)["enum"] == values


def test_actions_are_cloud_invocation_types() -> None:
    assert set(node("spec.action")["enum"]) <= {t.value for t in models.InvocationType}
    retried = set(node("spec.strategy.retry.onStatuses.[]")["enum"])
    assert retried <= {s.value for s in models.InvocationStatus}


def test_patterns_agree_with_the_client_models() -> None:
    assert node("spec.instances.[].id")["pattern"] == models.INSTANCE_ID_PATTERN.pattern
    assert node("spec.cloud.projectId")["pattern"] == models.PROJECT_ID_PATTERN.pattern


REGION = re.compile(node("spec.cloud.region")["pattern"])


@pytest.mark.parametrize(
    "region",
    [
        "cn-north-4",
        "cn-north-1",
        "cn-north-9",
        "cn-east-3",
        "cn-south-1",
        "cn-southwest-2",
        "ap-southeast-1",
        "ap-southeast-3",
        "af-south-1",
        "la-south-2",
        "la-north-2",
        "na-mexico-1",
        "sa-brazil-1",
        "tr-west-1",
        "me-east-1",
        "ru-northwest-2",
        "eu-west-101",
        "ae-ad-1",
        "my-kualalumpur-1",
        "sa-argentina-1",
        "sa-peru-1",
    ],
)
def test_region_pattern_accepts(region: str) -> None:
    assert REGION.match(region)


@pytest.mark.parametrize(
    "region", ["", "cn-north", "CN-NORTH-4", "cn_north_4", "cn-north-4 ", "north-4", "c-north-4", "cn--4"]
)
def test_region_pattern_rejects(region: str) -> None:
    assert not REGION.match(region)


def test_region_pattern_agrees_with_the_client() -> None:
    from cloudeye_operator.cloudeye import regions

    assert node("spec.cloud.region")["pattern"] == regions.REGION_ID_PATTERN.pattern


def test_secret_keys_agree_with_the_operator() -> None:
    from cloudeye_operator import credentials

    description = node("spec.cloud.credentialsSecretRef")["description"]
    for key in credentials.SECRET_KEYS:
        assert key in description, key


def test_unsupported_regions_agree_with_the_client_models() -> None:
    rules = node("spec.cloud.region")["x-kubernetes-validations"]
    assert len(rules) == 1
    listed = set(re.findall(r"'([a-z0-9-]+)'", rules[0]["rule"]))
    assert listed == set(models.UNSUPPORTED_REGIONS)
    for region, name in models.UNSUPPORTED_REGIONS.items():
        assert region in rules[0]["message"]
        assert name in rules[0]["message"]


def test_descriptions_carry_what_a_user_needs() -> None:
    assert "100" in node("spec.instances")["description"], "the batch size of the API"
    assert "server-side apply" in node("spec.instances")["description"]
    assert "ces:agent:createAgentInvocations" in node("spec.cloud.credentialsSecretRef")["description"]
    assert "ces:agent:listTaskInvocations" in node("spec.cloud.credentialsSecretRef")["description"]
    assert "ces:agent:listStatuses" in node("spec.cloud.credentialsSecretRef")["description"]
    assert "namespace" in node("spec.cloud.credentialsSecretRef")["description"]
    assert "YAML 1.1" in node("spec.strategy.retry.onStatuses")["description"], "why not `on`"


# --- Status shape --------------------------------------------------------------------------------


def test_status_instance_entry_fields() -> None:
    entry = node("status.instances.{}")
    assert entry["type"] == "object"
    assert set(entry["properties"]) == {
        "invocationId",
        "state",
        "attempts",
        "message",
        "currentVersion",
        "targetVersion",
        "lastTransitionTime",
        "action",
        "retryAt",
        "failure",
        "rollbackOf",
        "drift",
    }
    assert entry["required"] == ["state"]
    assert entry["properties"]["attempts"]["type"] == "integer"
    assert entry["properties"]["retryAt"]["format"] == "date-time"
    assert entry["properties"]["lastTransitionTime"]["format"] == "date-time"


def test_conditions_have_the_metav1_condition_shape() -> None:
    item = node("status.conditions.[]")
    assert set(item["properties"]) == {
        "type",
        "status",
        "observedGeneration",
        "lastTransitionTime",
        "reason",
        "message",
    }
    assert sorted(item["required"]) == ["lastTransitionTime", "message", "reason", "status", "type"]
    assert item["properties"]["lastTransitionTime"]["format"] == "date-time"
    assert item["properties"]["observedGeneration"]["format"] == "int64"


def test_intents_are_typed() -> None:
    intent = node("status.intents.{}")
    assert set(intent["properties"]) == {
        "action",
        "instanceIds",
        "invocationIds",
        "createdAt",
        "confirmed",
        "preexisting",
        "version",
    }
    assert sorted(intent["required"]) == ["action", "createdAt", "instanceIds"]
    assert intent["properties"]["createdAt"]["format"] == "date-time"
    assert node("status.intents.{}.instanceIds.[]")["type"] == "string"


def test_summary_counts() -> None:
    summary = node("status.summary")
    assert set(summary["properties"]) == {
        "total",
        "succeeded",
        "failed",
        "rolledBack",
        "inFlight",
        "pending",
        "skipped",
        "drifted",
    }
    # drifted came later: a status written before it still validates (the CEL rule reads it with has()).
    assert set(summary["required"]) == set(summary["properties"]) - {"drifted"}
    assert all(p["type"] == "integer" and p["minimum"] == 0 for p in summary["properties"].values())


# --- Printer columns ------------------------------------------------------------------------------


def test_printer_columns() -> None:
    columns = [
        (c["name"], c["type"], c["jsonPath"], c.get("priority", 0))
        for c in VERSION["additionalPrinterColumns"]
    ]
    ready = '.status.conditions[?(@.type=="Ready")]'
    assert columns == [
        ("Action", "string", ".spec.action", 0),
        ("Version", "string", ".spec.version", 0),
        ("Succeeded", "integer", ".status.summary.succeeded", 0),
        ("Total", "integer", ".status.summary.total", 0),
        ("Failed", "integer", ".status.summary.failed", 0),
        ("Ready", "string", f"{ready}.status", 0),
        ("Phase", "string", ".status.phase", 0),
        ("Reason", "string", f"{ready}.reason", 1),
        ("Age", "date", ".metadata.creationTimestamp", 0),
    ]


@pytest.mark.parametrize("column", VERSION["additionalPrinterColumns"], ids=lambda c: c["name"])
def test_printer_column_paths_exist(column: dict[str, Any]) -> None:
    path = column["jsonPath"]
    if path.startswith(".metadata."):
        return
    fields = re.sub(r"\[\?\(@\.type==\"Ready\"\)\]", ".[]", path).strip(".").split(".")
    node(".".join(fields))


# --- CEL rules: presence, messages, cost shape ----------------------------------------------------

CEL_RULES = {
    # (schema path, message) -> a fragment of the rule
    ("spec", "exactly one of instances or selector is required"): "has(self.instances) != has(self.selector)",
    ("spec", "selector is not allowed with action ROLLBACK"): "self.action != 'ROLLBACK'",
    ("spec.selector", "selector needs at least one of tags"): "has(self.enterpriseProjectId)",
    ("spec.selector.tags", "tag keys must be 1 to 128 characters"): "size(k) <= 128",
    ("spec", "versionType is only allowed with action INSTALL or UPDATE"): "!has(self.versionType)",
    ("spec", "version is only allowed with action INSTALL or UPDATE"): "!has(self.version)",
    ("spec", "strategy.rollbackOnFailure is only allowed with action UPDATE"): "self.action == 'UPDATE'",
    ("spec.cloud.region", "Cloud Eye agent maintenance tasks are not offered in"): "sa-argentina-1",
    (
        "spec.strategy",
        "progressDeadlineSeconds must be greater than pollIntervalSeconds",
    ): "self.progressDeadlineSeconds > self.pollIntervalSeconds",
    (
        "spec.strategy.maxInFlight",
        "maxInFlight must be an integer of at least 1 or a percentage from 1% to 100%",
    ): "self >= 1",
    (
        "spec.strategy.maxFailures",
        "maxFailures must be an integer of at least 0 or a percentage from 0% to 100%",
    ): "self >= 0",
    (
        "status.summary",
        "summary counts must add up",
    ): (
        "self.total == self.succeeded + self.failed + self.rolledBack + self.inFlight + self.pending"
        " + self.skipped"
    ),
}


def all_rules() -> list[tuple[str, dict[str, Any]]]:
    return [(path, rule) for path, sub in walk(SCHEMA) for rule in sub.get("x-kubernetes-validations", [])]


def test_every_expected_cel_rule_exists_with_its_message() -> None:
    found = all_rules()
    for (path, message), fragment in CEL_RULES.items():
        matches = [r for p, r in found if p == path and r["message"].startswith(message)]
        assert len(matches) == 1, f"no rule at {path} with message {message!r}"
        assert fragment in matches[0]["rule"], matches[0]["rule"]
    assert len(found) == len(CEL_RULES), "a new rule needs a row in CEL_RULES (and cases below)"


@pytest.mark.parametrize(("path", "rule"), all_rules(), ids=ids)
def test_cel_rule_is_well_formed(path: str, rule: dict[str, Any]) -> None:
    assert set(rule) <= {"rule", "message", "messageExpression", "fieldPath", "reason", "optionalOldSelf"}
    assert rule["message"], "every rule has a readable message"
    assert "\n" not in rule["message"]
    assert "\n" not in rule["rule"]
    assert rule.get("reason", "FieldValueInvalid") in {
        "FieldValueInvalid",
        "FieldValueForbidden",
        "FieldValueRequired",
        "FieldValueDuplicate",
    }
    if "fieldPath" in rule:
        # fieldPath must name an existing field below the rule's node.
        node(f"{path}{rule['fieldPath']}")
    assert "oldSelf" not in rule["rule"], "no transition rules in this CRD"


@pytest.mark.parametrize(("path", "rule"), all_rules(), ids=ids)
def test_cel_rule_cost_does_not_grow_with_the_fleet(path: str, rule: dict[str, Any]) -> None:
    # The API server multiplies a rule's cost by how many times it may run: a rule under a list or map
    # runs once per element. None of ours is; and none iterates over a list.
    assert ".[]" not in path, path
    assert ".{}" not in path, path
    if re.search(r"\.(all|exists|exists_one|map|filter)\(", rule["rule"]):
        # Only over a small bounded map (a selector's tags, at most 20), never over the fleet.
        assert node(path).get("maxProperties", 10**9) <= 20, (path, rule["rule"])


# --- Validation of manifests with jsonschema ------------------------------------------------------

# OpenAPI v3.0's schema object is JSON Schema draft 4/5 with extensions: Draft4Validator reads it;
# the x-kubernetes-* keys are ignored, which is why list-map uniqueness is checked separately.
STRICT_SCHEMA = strict_schema(SCHEMA)


def schema_errors(obj: dict[str, Any]) -> list[str]:
    obj = apply_defaults(copy.deepcopy(obj), SCHEMA)
    validator = jsonschema.Draft4Validator(STRICT_SCHEMA)
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]
    return errors + list_map_errors(obj, SCHEMA)


@needs_jsonschema
def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft4Validator.check_schema(SCHEMA)


@needs_jsonschema
def test_the_defaults_are_valid() -> None:
    for path, sub in walk(SCHEMA):
        if "default" in sub:
            assert not list(jsonschema.Draft4Validator(sub).iter_errors(sub["default"])), path


def test_there_are_four_examples() -> None:
    names = [p.name for p in EXAMPLES]
    assert names == ["install-fleet.yaml", "rollback.yaml", "telescope-fleet.yaml", "update-canary.yaml"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
@needs_jsonschema
def test_example_is_valid(path: Path) -> None:
    obj = load_example(path)
    assert obj["apiVersion"] == "cloudeye.dev/v1alpha1"
    assert obj["kind"] == "AgentRollout"
    assert schema_errors(obj) == []
    cloud = obj["spec"]["cloud"]
    assert cloud == {
        "region": "cn-north-4",
        "projectId": "0123456789abcdef0123456789abcdef",
        "endpoint": "http://127.0.0.1:8700",
        "credentialsSecretRef": {"name": "cloudeye-credentials"},
    }


def test_example_contents() -> None:
    install = load_example(EXAMPLES_DIR / "install-fleet.yaml")["spec"]
    assert install["action"] == "INSTALL"
    assert len(install["instances"]) == 12
    assert install["strategy"]["maxInFlight"] == 5
    update = load_example(EXAMPLES_DIR / "update-canary.yaml")["spec"]
    assert update["action"] == "UPDATE"
    assert update["version"] == "2.6.1"
    assert update["strategy"]["maxInFlight"] == "25%"
    assert update["strategy"]["maxFailures"] == 1
    assert update["strategy"]["rollbackOnFailure"] is True
    rollback = load_example(EXAMPLES_DIR / "rollback.yaml")["spec"]
    assert rollback["action"] == "ROLLBACK"
    assert "version" not in rollback
    assert "versionType" not in rollback


@needs_jsonschema
def test_a_full_valid_object_with_status() -> None:
    obj = minimal(
        action="UPDATE",
        instances=[
            {"id": "0a1b2c3d-0000-4000-8000-000000000001", "type": "ECS"},
            {"id": "bms-1", "type": "BMS"},
        ],
        versionType="ADVANCE_VERSION",
        version="2.6.1",
        cloud={
            "region": "ap-southeast-1",
            "projectId": "0123456789abcdef",
            "endpoint": "https://ces.ap-southeast-1.myhuaweicloud.com",
            "credentialsSecretRef": {"name": "cloudeye-credentials"},
        },
        strategy={
            "maxInFlight": "100%",
            "maxFailures": "0%",
            "retry": {"limit": 0, "backoffSeconds": 0, "onStatuses": ["TIMEOUT"]},
            "pollIntervalSeconds": 5,
            "progressDeadlineSeconds": 604800,
            "rollbackOnFailure": True,
        },
        paused=True,
    )
    obj["status"] = {
        "observedGeneration": 3,
        "phase": "Progressing",
        "revision": 1,
        "revisionKey": "UPDATE|2.6.1|ADVANCE_VERSION",
        "startedAt": "2025-11-25T21:10:00Z",
        "lastProgressAt": "2025-11-25T21:11:00Z",
        "apiError": {
            "httpStatus": 503,
            "errorCode": "taskmgr.5030",
            "message": "service unavailable",
            "time": "2025-11-25T21:10:30Z",
            "generation": 3,
        },
        "summary": {
            "total": 2,
            "succeeded": 1,
            "failed": 0,
            "rolledBack": 0,
            "inFlight": 1,
            "pending": 0,
            "skipped": 0,
        },
        "instances": {
            "0a1b2c3d-0000-4000-8000-000000000001": {
                "invocationId": "invocationxxx001",
                "state": "SUCCEEDED",
                "attempts": 1,
                "currentVersion": "2.6.1",
                "targetVersion": "2.6.1",
                "action": "UPDATE",
                "lastTransitionTime": "2025-11-25T21:11:00Z",
                "message": "",
            },
            "bms-1": {
                "invocationId": "invocationxxx002",
                "state": "RETRY_WAIT",
                "attempts": 2,
                "retryAt": "2025-11-25T21:11:30Z",
                "failure": "FAILED",
            },
        },
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "Progressing",
                "message": "1/2 succeeded",
                "observedGeneration": 3,
                "lastTransitionTime": "2025-11-25T21:11:00Z",
            },
            {
                "type": "Reconciling",
                "status": "True",
                "reason": "Progressing",
                "message": "",
                "lastTransitionTime": "2025-11-25T21:11:00Z",
            },
            {
                "type": "Stalled",
                "status": "False",
                "reason": "Progressing",
                "message": "",
                "lastTransitionTime": "2025-11-25T21:11:00Z",
            },
        ],
        "intents": {
            "r1-retry-20251125T211100Z": {
                "action": "RETRY",
                "instanceIds": ["bms-1"],
                "invocationIds": ["invocationxxx002"],
                "createdAt": "2025-11-25T21:11:00Z",
                "confirmed": [],
                "preexisting": [],
            },
        },
    }
    assert schema_errors(obj) == []


@needs_jsonschema
def test_the_largest_fleet_is_accepted_and_one_more_is_not() -> None:
    instances = [{"id": f"ecs-{i:05d}"} for i in range(MAX_INSTANCES)]
    assert schema_errors(minimal(instances=instances)) == []
    assert schema_errors(minimal(instances=[*instances, {"id": "ecs-extra"}]))


def _spec_with(path: str, value: Any) -> dict[str, Any]:
    """A minimal object with the field at `path` (dotted, under spec) set to `value`; `...` deletes."""
    obj = minimal()
    parent = obj["spec"]
    *parents, last = path.split(".")
    for part in parents:
        parent = parent.setdefault(part, {})
    if value is ...:
        del parent[last]
    else:
        parent[last] = value
    return obj


INVALID_SPECS = [
    # (field under spec, value, why)
    ("action", ..., "missing action"),
    ("action", "RETRY", "RETRY is the operator's business, not the user's"),
    ("action", "install", "enums are case-sensitive"),
    ("instances", [], "no instances"),
    ("instances", [{"id": "ecs_0001"}], "bad id: underscore"),
    ("instances", [{"id": ""}], "bad id: empty"),
    ("instances", [{"id": "e" * 65}], "bad id: too long"),
    ("instances", [{"id": "ecs-0001", "type": "VM"}], "bad instance type"),
    ("instances", [{"type": "ECS"}], "instance without id"),
    ("instances", [{"id": "ecs-0001", "name": "web"}], "unknown field in an instance"),
    ("versionType", "PRO_VERSION", "bad versionType"),
    ("version", "", "empty version"),
    ("version", "1" * 65, "version too long"),
    ("version", 2.6, "version must be a string"),
    ("cloud.region", "CN-NORTH-4", "bad region"),
    ("cloud.region", "cn-north", "region without number"),
    ("cloud.projectId", "0123ABCD", "projectId with capitals"),
    ("cloud.projectId", "p" * 65, "projectId too long"),
    ("cloud.endpoint", "ftp://127.0.0.1:8700", "endpoint not http(s)"),
    ("cloud.endpoint", "127.0.0.1:8700", "endpoint without scheme"),
    ("cloud.endpoint", "https://user:secret@ces.example.com", "credentials in the endpoint"),
    ("cloud.endpoint", "https://ces.example.com/?x=1", "query in the endpoint"),
    ("cloud.credentialsSecretRef", {}, "secret ref without a name"),
    ("cloud.credentialsSecretRef", {"name": "Cloudeye_Credentials"}, "secret name not DNS-1123"),
    ("cloud.credentialsSecretRef", {"name": "x", "namespace": "other"}, "no cross-namespace secret"),
    ("strategy.maxInFlight", 0, "maxInFlight 0"),
    ("strategy.maxInFlight", -1, "maxInFlight negative"),
    ("strategy.maxInFlight", "0%", "maxInFlight 0%"),
    ("strategy.maxInFlight", "101%", "maxInFlight over 100%"),
    ("strategy.maxInFlight", "25", "maxInFlight: a number in a string"),
    ("strategy.maxInFlight", "25 %", "maxInFlight with a space"),
    ("strategy.maxInFlight", 2.5, "maxInFlight fractional"),
    ("strategy.maxInFlight", 1001, "maxInFlight over MAX_IN_FLIGHT (the status must fit one object)"),
    ("strategy.maxInFlight", True, "maxInFlight boolean"),
    ("strategy.maxFailures", -1, "maxFailures negative"),
    ("strategy.maxFailures", "101%", "maxFailures over 100%"),
    ("strategy.maxFailures", "05%", "maxFailures with a leading zero"),
    ("strategy.retry.limit", 21, "retry limit over 20"),
    ("strategy.retry.limit", -1, "retry limit negative"),
    ("strategy.retry.backoffSeconds", 86401, "backoff over a day"),
    ("strategy.retry.onStatuses", ["CANCELED"], "retry on a state that is not offered"),
    ("strategy.retry.onStatuses", ["FAILED", "FAILED"], "retry.onStatuses is a set"),
    ("strategy.retry.on", ["FAILED"], "the old name retry.on"),
    ("strategy.retry.true", ["FAILED"], "a bare on: key read by YAML 1.1"),
    ("strategy.pollIntervalSeconds", 0, "poll interval 0"),
    ("strategy.pollIntervalSeconds", 3601, "poll slower than an hour"),
    ("strategy.progressDeadlineSeconds", 59, "deadline under a minute"),
    ("strategy.progressDeadlineSeconds", 604801, "deadline over a week"),
    ("strategy.rollbackOnFailure", "yes", "rollbackOnFailure as a string"),
    ("strategy.maxInflight", 5, "a typo in a field name (strict field validation)"),
    ("paused", "false", "paused as a string"),
]


@pytest.mark.parametrize(("path", "value", "why"), INVALID_SPECS, ids=[c[2] for c in INVALID_SPECS])
@needs_jsonschema
def test_invalid_spec_is_rejected_by_the_schema(path: str, value: Any, why: str) -> None:
    errors = schema_errors(_spec_with(path, value))
    field = path.rsplit(".", 1)[-1]
    assert any(field in error for error in errors), f"{why}: {errors}"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("strategy.maxInFlight", 1),
        ("strategy.maxInFlight", 1000),
        ("strategy.maxInFlight", "1%"),
        ("strategy.maxInFlight", "100%"),
        ("strategy.maxFailures", 0),
        ("strategy.maxFailures", "0%"),
        ("strategy.maxFailures", "9%"),
        ("strategy.maxFailures", "100%"),
        ("strategy.retry.onStatuses", []),
        ("strategy.pollIntervalSeconds", 1),
        ("cloud.endpoint", "http://[::1]:8700"),
        ("cloud.endpoint", "https://proxy.example.com/ces/"),
        ("cloud.credentialsSecretRef", {"name": "cloudeye.credentials-2"}),
        ("instances", [{"id": "ecs-0001"}, {"id": "ECS-0001"}]),
    ],
)
@needs_jsonschema
def test_valid_spec_is_accepted_by_the_schema(path: str, value: Any) -> None:
    assert schema_errors(_spec_with(path, value)) == []


def test_unquoted_on_is_read_as_true_by_yaml_1_1() -> None:
    # Why the field is onStatuses and not on: PyYAML (like kubectl's sigs.k8s.io/yaml) follows YAML 1.1,
    # where a bare `on` key is the boolean true; onStatuses needs no quoting.
    assert yaml.safe_load("retry:\n  on: [FAILED]\n") == {"retry": {True: ["FAILED"]}}
    assert yaml.safe_load("retry:\n  onStatuses: [FAILED]\n") == {"retry": {"onStatuses": ["FAILED"]}}


@pytest.mark.parametrize(
    ("status", "why"),
    [
        ({"phase": "Running"}, "phase not in the enum"),
        ({"summary": {"total": 1}}, "summary incomplete"),
        ({"instances": {"ecs-1": {"attempts": 1}}}, "instance entry without state"),
        ({"instances": {"ecs-1": {"state": "RUNNING", "extra": 1}}}, "unknown field would be pruned"),
        (
            {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "true",
                        "reason": "Done",
                        "message": "",
                        "lastTransitionTime": "2025-11-25T21:11:00Z",
                    }
                ]
            },
            "condition status lower case",
        ),
        (
            {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "message": "",
                        "lastTransitionTime": "2025-11-25T21:11:00Z",
                    }
                ]
            },
            "condition without reason",
        ),
        (
            {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "Done",
                        "message": "",
                        "lastTransitionTime": "t",
                    }
                ]
                * 2
            },
            "duplicate condition type",
        ),
        ({"intents": {"k": {"action": "DELETE"}}}, "intent action not a task type"),
        (
            {
                "intents": {
                    "k": {
                        "action": "UPDATE",
                        "instanceIds": [f"e{i}" for i in range(MAX_INSTANCES + 1)],
                        "createdAt": "2025-11-25T21:11:00Z",
                    }
                }
            },
            "intent over the largest fleet",
        ),
        ({"intents": {"k": {"action": "UPDATE", "instanceIds": ["e1"]}}}, "intent without createdAt"),
        ({"instances": {"ecs-1": {"state": "RETRY_WAIT", "failure": "CANCELED"}}}, "failure not offered"),
        ({"apiError": {"httpStatus": 500}}, "apiError without time"),
        ({"somethingElse": 1}, "status is typed"),
    ],
    ids=ids,
)
@needs_jsonschema
def test_invalid_status_is_rejected_by_the_schema(status: dict[str, Any], why: str) -> None:
    obj = minimal()
    obj["status"] = status
    assert schema_errors(obj), why


# --- CEL rules, evaluated with cel-python ----------------------------------------------------------

_PROGRAMS: dict[str, Any] = {}


def cel_errors(value: Any, schema: dict[str, Any] = SCHEMA, path: str = "") -> list[str]:
    """Evaluate every x-kubernetes-validations rule whose node is present, as the API server does
    after defaulting; a rule that cannot be evaluated counts as failed."""
    errors: list[str] = []
    for rule in schema.get("x-kubernetes-validations", []):
        program = _PROGRAMS.get(rule["rule"])
        if program is None:
            env = celpy.Environment()
            program = _PROGRAMS[rule["rule"]] = env.program(env.compile(rule["rule"]))
        try:
            result = program.evaluate({"self": celpy.json_to_cel(value)})
        except celpy.CELEvalError as error:
            result = error
        # celpy may return an evaluation error instead of raising it: only a true bool passes.
        if not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
            errors.append(f"{path}{rule.get('fieldPath', '')}: {rule['message']}")
    if isinstance(value, dict):
        for name, child in value.items():
            sub = schema.get("properties", {}).get(name) or schema.get("additionalProperties")
            if isinstance(sub, dict):
                errors += cel_errors(child, sub, f"{path}.{name}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errors += cel_errors(item, schema["items"], f"{path}[{i}]")
    return errors


def all_errors(obj: dict[str, Any]) -> list[str]:
    obj = apply_defaults(copy.deepcopy(obj), SCHEMA)
    return schema_errors(obj) + cel_errors(obj)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
@needs_celpy
def test_example_passes_the_cel_rules(path: Path) -> None:
    assert all_errors(load_example(path)) == []


@pytest.mark.parametrize(
    "spec",
    [
        {"action": "INSTALL", "versionType": "BASIC_VERSION", "version": "2.6.1"},
        {"action": "UPDATE", "versionType": "ADVANCE_VERSION", "strategy": {"rollbackOnFailure": True}},
        {"action": "UPDATE", "strategy": {"rollbackOnFailure": False}},
        {"action": "ROLLBACK"},
        {"action": "ROLLBACK", "strategy": {"rollbackOnFailure": False}},
        {"action": "INSTALL", "strategy": {"maxInFlight": "1%", "maxFailures": "100%"}},
        {"action": "INSTALL", "strategy": {"pollIntervalSeconds": 3600, "progressDeadlineSeconds": 3601}},
        {"action": "INSTALL", "cloud": {"region": "la-south-2"}},
        {"action": "INSTALL", "instances": None, "selector": {"tags": {"monitoring": "telescope"}}},
        {
            "action": "UPDATE",
            "instances": None,
            "selector": {"enterpriseProjectId": "0", "status": "SHUTOFF"},
        },
        {"action": "UPDATE", "instances": None, "selector": {"name": "web-", "tags": {"env": ""}}},
    ],
    ids=str,
)
@needs_celpy
def test_cel_accepts(spec: dict[str, Any]) -> None:
    assert all_errors(minimal(**spec)) == []


CEL_REJECTS = [
    (
        {"action": "ROLLBACK", "versionType": "BASIC_VERSION"},
        ".spec.versionType: versionType is only allowed",
    ),
    ({"action": "ROLLBACK", "version": "2.6.1"}, ".spec.version: version is only allowed"),
    (
        {"action": "INSTALL", "strategy": {"rollbackOnFailure": True}},
        ".spec.strategy.rollbackOnFailure: strategy.rollbackOnFailure is only allowed with action UPDATE",
    ),
    (
        {"action": "ROLLBACK", "strategy": {"rollbackOnFailure": True}},
        ".spec.strategy.rollbackOnFailure: strategy.rollbackOnFailure is only allowed with action UPDATE",
    ),
    ({"strategy": {"maxInFlight": 0}}, ".spec.strategy.maxInFlight: maxInFlight must be"),
    ({"strategy": {"maxInFlight": "0%"}}, ".spec.strategy.maxInFlight: maxInFlight must be"),
    ({"strategy": {"maxInFlight": "250%"}}, ".spec.strategy.maxInFlight: maxInFlight must be"),
    ({"strategy": {"maxInFlight": "ten"}}, ".spec.strategy.maxInFlight: maxInFlight must be"),
    ({"strategy": {"maxFailures": -1}}, ".spec.strategy.maxFailures: maxFailures must be"),
    ({"strategy": {"maxFailures": "101%"}}, ".spec.strategy.maxFailures: maxFailures must be"),
    (
        {"strategy": {"pollIntervalSeconds": 60, "progressDeadlineSeconds": 60}},
        ".spec.strategy.progressDeadlineSeconds: progressDeadlineSeconds must be greater",
    ),
    (
        {"strategy": {"pollIntervalSeconds": 3600}},
        ".spec.strategy.progressDeadlineSeconds: progressDeadlineSeconds must be greater",
    ),
    (
        {"cloud": {"region": "sa-argentina-1"}},
        ".spec.cloud.region: Cloud Eye agent maintenance tasks are not",
    ),
    ({"cloud": {"region": "sa-peru-1"}}, ".spec.cloud.region: Cloud Eye agent maintenance tasks are not"),
    ({"instances": None}, ".spec: exactly one of instances or selector is required"),
    ({"selector": {"tags": {"a": "b"}}}, ".spec: exactly one of instances or selector is required"),
    (
        {"action": "ROLLBACK", "instances": None, "selector": {"tags": {"a": "b"}}},
        ".spec.selector: selector is not allowed with action ROLLBACK",
    ),
    (
        {"instances": None, "selector": {"status": "ACTIVE"}},
        ".spec.selector: selector needs at least one of tags",
    ),
    (
        {"instances": None, "selector": {"tags": {"": "b"}}},
        ".spec.selector.tags: tag keys must be 1 to 128",
    ),
]


@pytest.mark.parametrize(("spec", "expected"), CEL_REJECTS, ids=[c[1].split(":")[0] for c in CEL_REJECTS])
@needs_celpy
def test_cel_rejects_with_a_readable_message(spec: dict[str, Any], expected: str) -> None:
    errors = cel_errors(apply_defaults(minimal(**spec), SCHEMA))
    assert len(errors) == 1, errors
    assert errors[0].startswith(expected), errors


def test_every_cel_rule_is_exercised_by_a_rejection() -> None:
    messages = {message for (_, message) in CEL_RULES}
    rejected = {m for m in messages for _, expected in CEL_REJECTS if expected.split(": ", 1)[1] in m}
    rejected |= {"summary counts must add up"}  # status: exercised below
    assert rejected == messages


@needs_celpy
def test_cel_summary_counts_add_up() -> None:
    obj = minimal()
    obj["status"] = {
        "summary": {
            "total": 6,
            "succeeded": 1,
            "failed": 1,
            "rolledBack": 1,
            "inFlight": 1,
            "pending": 1,
            "skipped": 1,
        }
    }
    assert all_errors(obj) == []
    obj["status"]["summary"]["skipped"] = 2
    assert cel_errors(obj) == [
        ".status.summary: summary counts must add up: total == succeeded + failed + rolledBack + "
        "inFlight + pending + skipped + drifted"
    ]
