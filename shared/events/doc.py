"""Write the event contract's documents from its declaration: one JSON Schema per event type
and version (`docs/events/<source>/<EventType>.v<N>.json`) and the catalogue
`docs/events.md` — `python -m shared.events.doc docs` (`make docs`). The unit tests fail when
the files differ from what this writes, so the documents always say what the code checks."""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, create_model

from shared.events.base import Payload
from shared.events.catalogue import BY_SOURCE
from shared.events.envelope import Header

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

INTRO = """\
# Event catalogue

Generated from `shared/events/` by `make docs`; do not edit.

Every service publishes its events to its own durable topic exchange `<service>.events`; the
routing key and the AMQP `type` property are the event type (`message_id` is the `event_id`,
`delivery_mode` 2, `content_type` application/json). Each message body is one JSON
envelope (below) whose `data` is the payload of its event type and schema version. The JSON
Schema of each event type and version is in `docs/events/<service>/<EventType>.v<N>.json`.

Every consumer in carepath checks each message against this contract before it acts
(`shared.events.parse`): the envelope's `source` must be the service whose exchange it came on,
the event type and version must be known here, and every field must have its type and stay in
its bounds; the fields are closed (an unknown field is an error). A message that fails, and a
message the projector's fold or a reaction refuses, goes to the queue `carepath.dead-letter`
with the reason in its `x-carepath-reason` header; one a consumer fails on otherwise (its store
down, an unexpected error) is tried again later and dead-lettered only after a limit
(docs/operations.md, "Dead letters"). The consumer goes on.

Publishers: each service's relay maps its domain events to these payloads explicitly
(`services/<service>/contract.py`) and publishes nothing else; a stored event that breaks its
declaration is dead-lettered by the relay with the reason.

Versions: a change a consumer could trip on is a new `schema_version` of that event type, and
consumers upcast older versions on read (`shared.events.envelope.UPCASTS`). Every event type is
at version 1 but these, at version 2:

- the directory's `OrganisationRegistered` and `OrganisationChanged` gained `orgnr` (a version 1
  event reads as version 2 with `orgnr` null);
- `PatientDeclaredReadyForDischarge` gained the readiness notice's content (`status`,
  `functional_level`, `expected_course`, `follow_up_needs`), on which the municipality's duty
  to pay depends (a version 1 event reads as version 2 with each null: not recorded);
- `PatientAdmitted` renamed `municipality_her_id` to `home_municipality_her_id` (a version 1
  event reads as version 2 with the same value). Why: the field holds the patient's home
  municipality *as the admitting hospital gave it*, to which the stay's messages go. Named
  `municipality_her_id`, a vendor reads it as *the* municipality of the patient — the one that
  serves or pays — but since 2019 the municipality that pays for days ready for discharge is the
  one the patient stays in (oppholdskommunen), and who may see the patient follows the
  registers, never this field; three other events carry a `municipality_her_id` that means
  another thing (the residence, the temporary stay, the municipality notified of readiness). A
  rename is the smallest change a consumer trips on (a v1 reader finds its field missing), so
  it shows the whole path once: a new schema version, the upcast for stored and queued events,
  a downcast for vendors still on the old contract.

Vendor subscriptions state the *contract version* they receive (`contract_version`, README
"For vendors"): version 1 is the contract as first published to vendors (`PatientAdmitted`
version 1), version 2 has `PatientAdmitted` version 2, version 3 the current one also
`PatientDeclaredReadyForDischarge` version 2; every other event type is the same in all. A
subscription created without naming one receives the current version; the vendor delivery
brings each event down to the subscription's version (`shared.events.envelope.DOWNCASTS`:
only steps that lose nothing the older version carried are declared — the readiness notice's
content is clinical free text versions 1 and 2 never had), and each
vendor message names its version (`contract: carepath.vendor/<N>`). The vendor exchange is
described for AsyncAPI tools in `docs/asyncapi.yaml` (generated from the same declaration).
The older versions of an event type are listed below with their own schema.

Inside each service, its stored domain events evolve the same way: a stored event whose shape
changes gets a new `class_version` on its event class and an `upcast_v<N>_v<N+1>` step
(eventsourcing's upcasting, e.g. the registry's `Organisation.OrganisationRegistered`), so a
store written by an earlier release reads as the newest shape, and a changed snapshot state
likewise on its aggregate class. `tests/integration/test_stored_history.py` opens stores that
earlier releases wrote (`tests/fixtures/stores/`, with how to write one) and reads every
aggregate, the notification logs and a rebuilt pathway from them.
"""


def message_model(cls: type[Payload]) -> type[BaseModel]:
    """The whole message of one event type and version: the envelope with this `data`."""
    constant: dict[str, Any] = {
        "event_type": (Literal[cls.event_type()], ...),
        "schema_version": (Literal[cls.schema_version], ...),
        "source": (Literal[cls.source], ...),
        "data": (cls, ...),
    }
    model: type[BaseModel] = create_model(
        cls.event_type(), __base__=Header, __doc__=inspect.getdoc(cls), **constant
    )
    return model


def schema_path(cls: type[Payload]) -> str:
    return f"events/{cls.source}/{cls.event_type()}.v{cls.schema_version}.json"


def schema(cls: type[Payload]) -> dict[str, Any]:
    body = message_model(cls).model_json_schema()
    return {"$schema": SCHEMA_DIALECT, "$id": f"carepath:{schema_path(cls)}", **body}


BOUNDS = (
    ("minLength", "≥", "chars"),
    ("maxLength", "≤", "chars"),
    ("minItems", "≥", "items"),
    ("maxItems", "≤", "items"),
)


def _type(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return f"object ({name}: {', '.join(defs[name].get('properties', {}))})"
    if "anyOf" in prop:
        kinds = [_type(p, defs) for p in prop["anyOf"]]
        return " or ".join("null" if k == "null" else k for k in kinds)
    if "enum" in prop:
        return "one of " + ", ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    kind = str(prop.get("type", "any"))
    bounds = []
    if kind == "array":
        kind = f"list of {_type(prop.get('items', {}), defs)}"
    if "format" in prop:
        bounds.append(prop["format"])
    if "pattern" in prop:
        bounds.append(f"pattern `{prop['pattern']}`")
    for key, label, unit in BOUNDS:
        if key in prop:
            bounds.append(f"{label} {prop[key]} {unit}")
    for key, label in (("minimum", "≥"), ("maximum", "≤")):
        if key in prop:
            bounds.append(f"{label} {prop[key]}")
    return f"{kind} ({', '.join(bounds)})" if bounds else kind


def _nested(prop: dict[str, Any]) -> str | None:
    """The name of the object type a field holds (itself, in a list, or optional)."""
    for candidate in (prop, prop.get("items", {}), *prop.get("anyOf", [])):
        if "$ref" in candidate:
            return str(candidate["$ref"].rsplit("/", 1)[-1])
    return None


def _rows(body: dict[str, Any], defs: dict[str, Any], prefix: str = "") -> list[str]:
    required = set(body.get("required", []))
    rows = []
    for name, prop in body.get("properties", {}).items():
        meaning = " ".join(str(prop.get("description", "")).split())
        kind = _type(prop, defs).replace("|", "\\|")
        rows.append(
            f"| `{prefix}{name}` | {kind} | {'yes' if name in required else 'no'} | {meaning} |"
        )
        nested = _nested(prop)
        if nested and not prefix:
            rows += _rows(defs[nested], defs, f"{name}.")
    return rows


def _fields(model: type[BaseModel]) -> list[str]:
    body = model.model_json_schema()
    header = ["| field | type | required | meaning |", "| --- | --- | --- | --- |"]
    return header + _rows(body, body.get("$defs", {}))


def catalogue() -> str:
    lines = [INTRO, "## The envelope", "", *_fields(Header), ""]
    for source, classes in BY_SOURCE.items():
        module = sys.modules[classes[0].__module__]
        lines += [f"## {source}", "", " ".join((module.__doc__ or "").split()), ""]
        lines += [f"Exchange `{source}.events` (topic, durable).", ""]
        for cls in classes:
            doc = " ".join((inspect.getdoc(cls) or "").split())
            lines += [
                f"### {cls.event_type()} (v{cls.schema_version})",
                "",
                doc,
                "",
                f"Routing key `{cls.event_type()}` on `{source}.events`; "
                f"schema [`{schema_path(cls)}`]({schema_path(cls)}); "
                f"patient: {'the patient it is about' if cls.about_patient else '{}'}.",
                "",
            ]
            lines += [*_fields(cls), ""] if cls.model_fields else ["No fields: `data` is {}.", ""]
    return "\n".join(lines).rstrip() + "\n"


def render() -> dict[str, str]:
    """Every generated document, by path under docs/."""
    files = {"events.md": catalogue()}
    for classes in BY_SOURCE.values():
        for cls in classes:
            files[schema_path(cls)] = json.dumps(schema(cls), indent=2, ensure_ascii=False) + "\n"
    return files


def write(docs: Path) -> None:
    """Write the documents under `docs`, removing schemas no longer declared."""
    files = render()
    for old in (docs / "events").glob("*/*.json"):
        if str(old.relative_to(docs)) not in files:
            old.unlink()
    for path, text in files.items():
        target = docs / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


if __name__ == "__main__":
    write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
