"""The vendor exchange as an AsyncAPI 2.6 document, generated from the same declarations as
docs/events.md (the payload classes of shared/events/) and from what the vendor delivery
actually sends (services/streams/filters.py: the minimised envelope plus `position`,
`subscription`, `contract`, `omitted`) — `python -m services.streams.asyncapi docs`
(`make docs`) writes `docs/asyncapi.yaml`, one document per vendor contract version
(`docs/asyncapi.v<N>.yaml` for the older ones). The unit tests fail when the committed files
differ from what this writes, and check them against the AsyncAPI 2.6 JSON Schema.

Each message's payload is the event's JSON Schema as a vendor receives it: the fields the
delivery may leave out for a subscription (clinical free text, HPR-numbers in the data) are
not required, the patient may be {} (purposes without the identifier).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from services.streams.delivery import CONTRACT_HEADER, POSITION_HEADER
from services.streams.domain import NAME
from services.streams.filters import NEVER_DELIVERED, free_text_paths, vendor_contract
from services.streams.notifications import CONTENT_TYPE as FHIR_CONTENT_TYPE
from services.streams.notifications import NATIVE_CONTENT_TYPE, TOPIC
from services.streams.provisioning import VENDOR_EXCHANGE, dead_letter_queue
from shared.events import BY_SOURCE, CONTRACT_VERSIONS, CURRENT_CONTRACT, Payload
from shared.events.catalogue import schema_version_in
from shared.events.doc import schema_path
from shared.events.envelope import Header

ASYNCAPI = "2.6.0"
AMQP_BINDING = "0.2.0"
#: How pydantic refers to a schema's local definitions (moved to components.schemas here).
_REF = "#/$defs/"

DESCRIPTION = """\
carepath's events for vendors of municipal EHRs, welfare technology and hospital systems.

A vendor gets its events through a subscription that carepath's operators create (README, "For
vendors"): the vendor's organisation, a coded purpose, the organisations its system serves,
the event types and sources it wants, whether clinical free text may be delivered, and the
version of this contract it receives. Creating it provisions the vendor's own quorum queue
`vendor.<name>` (its dead letters in `vendor.<name>.dead-letter`), bound from the exchange
`carepath.vendor`, and a broker user that may read that queue and nothing else.

Each message is one event: the envelope of docs/events.md, minimised for the subscription
(free text left out unless allowed, the patient's identifier and HPR-numbers only where the
purpose needs them; `omitted` names what was left out), with the event's `position` in
carepath's stream (stable, increasing; dedupe on `event_id` or `position`), the subscription's
name and the contract version. A subscription created with the notification format FHIR_R5
receives each event instead as a FHIR R5 `subscription-notification` Bundle
(`FhirNotification`) whose focus Binary is that very message. A patient's events reach the
subscription only while one of the organisations it serves has a care relationship with the
patient and no block holds.

Versions: this document is contract version {version} (`contract`: `{contract}`). Each
subscription states the version it receives; an event type that changed between versions is
delivered at its schema version in the subscription's version. docs/events.md, "Versions",
lists the changes; every version carepath serves has its document here.
"""


def delivered(version: int) -> list[type[Payload]]:
    """The payload classes a subscription on `version` can receive, in catalogue order."""
    found = []
    for source, classes in BY_SOURCE.items():
        for cls in classes:
            if (source, cls.event_type()) in NEVER_DELIVERED:
                continue
            wanted = schema_version_in(version, source, cls.event_type())
            if cls.schema_version == wanted:
                found.append(cls)
    return found


def message_name(cls: type[Payload]) -> str:
    """Its source too: admissions and discharges both publish a MessageReceiptRecorded."""
    return f"{cls.source}.{cls.event_type()}.v{cls.schema_version}"


def _optional(schema: dict[str, Any], name: str) -> None:
    if name in schema.get("required", []):
        schema["required"] = [r for r in schema["required"] if r != name]
        if not schema["required"]:
            del schema["required"]


def data_schema(cls: type[Payload]) -> dict[str, Any]:
    """The JSON Schema of one event type's `data` as a vendor receives it (with local `$defs`):
    what the delivery may leave out is not required."""
    body = cls.model_json_schema()
    for path in free_text_paths(cls):
        if len(path) == 1:
            _optional(body, path[0])
        else:  # a list of objects (AppRec errors): the text inside each
            _optional(body["$defs"][_item_def(body, path[0])], path[-1])
    for name in [n for n in body.get("properties", {}) if "hpr" in n]:
        _optional(body, name)
    return body


def _item_def(body: dict[str, Any], field: str) -> str:
    """The name of the model a list field holds (AppRec errors: `AppRecError`)."""
    prop = body["properties"][field]
    items = prop.get("items") or next(p["items"] for p in prop["anyOf"] if "items" in p)
    return str(items["$ref"].removeprefix(_REF))


def envelope_schema(version: int) -> dict[str, Any]:
    """Every vendor message's fields: the envelope (docs/events.md) and the delivery's own."""
    body = Header.model_json_schema()
    body["title"] = "VendorMessage"
    body["description"] = "The envelope of docs/events.md, minimised, with the delivery's fields."
    body["properties"].update(
        position={
            "type": "integer",
            "minimum": 1,
            "description": "The event's position in carepath's stream: stable across "
            "restarts, increasing in the order carepath delivered the events.",
        },
        subscription={"type": "string", "description": "The subscription's name."},
        contract={
            "const": vendor_contract(version),
            "description": "The vendor contract version of this message.",
        },
        omitted={
            "type": "array",
            "items": {"type": "string"},
            "description": "What the subscription's purpose or free-text choice left out "
            "(`patient`, `actor.hpr`, `data.<field>`, `data.errors.*.description`).",
        },
    )
    body["required"] = [*body["required"], "position", "subscription", "contract", "omitted"]
    return body


def _components(bodies: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The schemas, each with its `$defs` moved to components.schemas (a definition named
    once; a name two different definitions share gets the schema's name in front)."""
    schemas: dict[str, Any] = {}
    for key, body in bodies.items():
        body = copy.deepcopy(body)
        names: dict[str, str] = {}
        for name, definition in body.pop("$defs", {}).items():
            target = name
            if target in schemas and schemas[target] != definition:
                target = f"{key}.{name}"
            names[name] = target
            schemas.setdefault(target, definition)
        schemas[key] = _rewrite(body, names)
    return {name: _rewrite(schema, {n: n for n in schemas}) for name, schema in schemas.items()}


def _rewrite(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str) and item.startswith(_REF):
                out[key] = "#/components/schemas/" + names[item.removeprefix(_REF)]
            else:
                out[key] = _rewrite(item, names)
        return out
    if isinstance(value, list):
        return [_rewrite(v, names) for v in value]
    return value


def fhir_notification_schema() -> dict[str, Any]:
    """The outline of a FHIR R5 event notification as carepath sends it (the full rules are
    FHIR R5's Bundle and SubscriptionStatus; carepath validates each with fhir.resources)."""
    number = {"type": "string", "pattern": "^[1-9][0-9]*$"}
    status = {
        "type": "object",
        "required": ["resourceType", "type", "subscription", "notificationEvent"],
        "properties": {
            "resourceType": {"const": "SubscriptionStatus"},
            "status": {"enum": ["active", "off"]},
            "type": {"const": "event-notification"},
            "eventsSinceSubscriptionStart": number,
            "subscription": {
                "type": "object",
                "properties": {"reference": {"type": "string", "pattern": "^Subscription/"}},
            },
            "topic": {"const": TOPIC},
            "notificationEvent": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1,
                "items": {
                    "type": "object",
                    "required": ["eventNumber", "focus"],
                    "properties": {
                        "eventNumber": number,
                        "timestamp": {"type": "string", "format": "date-time"},
                        "focus": {
                            "type": "object",
                            "properties": {
                                "reference": {"type": "string", "pattern": "^urn:uuid:"},
                                "type": {"const": "Binary"},
                            },
                        },
                    },
                },
            },
        },
    }
    binary = {
        "type": "object",
        "required": ["resourceType", "contentType", "data"],
        "properties": {
            "resourceType": {"const": "Binary"},
            "contentType": {"const": NATIVE_CONTENT_TYPE},
            "data": {"type": "string", "contentEncoding": "base64"},
        },
    }
    return {
        "type": "object",
        "description": "A FHIR R5 Bundle (application/fhir+json; fhirVersion=5.0).",
        "required": ["resourceType", "type", "timestamp", "entry"],
        "properties": {
            "resourceType": {"const": "Bundle"},
            "id": {"type": "string"},
            "type": {"const": "subscription-notification"},
            "timestamp": {"type": "string", "format": "date-time"},
            "entry": {
                "type": "array",
                "description": "The SubscriptionStatus first, then the Binary its focus names.",
                "minItems": 2,
                "maxItems": 2,
                "items": {
                    "type": "object",
                    "required": ["fullUrl", "resource"],
                    "properties": {
                        "fullUrl": {"type": "string", "pattern": "^urn:uuid:"},
                        "resource": {"oneOf": [status, binary]},
                    },
                },
            },
        },
    }


def document(version: int = CURRENT_CONTRACT) -> dict[str, Any]:
    classes = delivered(version)
    bodies = {"VendorMessage": envelope_schema(version)}
    bodies.update({f"{message_name(cls)}.data": data_schema(cls) for cls in classes})
    schemas = _components(bodies)
    messages = {}
    for cls in classes:
        name = message_name(cls)
        patient = (
            "the patient it is about, or {} where the purpose has no need of the identifier"
            if cls.about_patient
            else "{} (about no patient)"
        )
        messages[name] = {
            "name": cls.event_type(),
            "title": f"{cls.event_type()} (schema version {cls.schema_version})",
            "summary": " ".join(cls.published_when().split()),
            "description": f"From `{cls.source}.events`; the whole event's JSON Schema as "
            f"carepath checks it: docs/{schema_path(cls)}. Its `patient` is {patient}.",
            "contentType": "application/json",
            "headers": {"$ref": "#/components/schemas/VendorHeaders"},
            "correlationId": {"$ref": "#/components/correlationIds/CorrelationId"},
            "payload": {
                "allOf": [
                    {"$ref": "#/components/schemas/VendorMessage"},
                    {
                        "type": "object",
                        "properties": {
                            "event_type": {"const": cls.event_type()},
                            "schema_version": {"const": cls.schema_version},
                            "source": {"const": cls.source},
                            "data": {"$ref": f"#/components/schemas/{name}.data"},
                        },
                    },
                ]
            },
            "bindings": {"amqp": {"messageType": cls.event_type(), "bindingVersion": AMQP_BINDING}},
        }
    schemas["FhirNotification"] = fhir_notification_schema()
    messages["FhirNotification"] = {
        "name": "FhirNotification",
        "title": "A FHIR R5 event notification (subscriptions in the FHIR_R5 format)",
        "summary": "One event, as FHIR R5 topic-based subscriptions notify it.",
        "description": "A Bundle of type `subscription-notification`: its first entry is a "
        "SubscriptionStatus (`type` event-notification, `notificationEvent[0].eventNumber` = "
        "the event's `position`, `eventsSinceSubscriptionStart` the same, `focus` the "
        "Bundle's second entry), its second a Binary (`application/json`) whose `data` is, "
        "base64-encoded, the native message above for the same subscription (minimised and "
        "filtered alike). R5 writes the integer64 numbers as JSON strings. docs/fhir.md, "
        '"Notifications".',
        "contentType": FHIR_CONTENT_TYPE,
        "headers": {"$ref": "#/components/schemas/VendorHeaders"},
        "payload": {"$ref": "#/components/schemas/FhirNotification"},
        "bindings": {"amqp": {"messageType": "FhirNotification", "bindingVersion": AMQP_BINDING}},
    }
    schemas["VendorHeaders"] = {
        "type": "object",
        "description": "The message's AMQP headers. Its properties: `message_id` is the "
        "`event_id`, `type` the event type, `app_id` the source service, `correlation_id` the "
        "envelope's, `timestamp` when carepath stored it, `delivery_mode` 2, `user_id` "
        "carepath's streams user (RabbitMQ checks it: trust no message without it).",
        "properties": {
            POSITION_HEADER: {"type": "integer", "minimum": 1, "description": "= `position`."},
            CONTRACT_HEADER: {"const": vendor_contract(version), "description": "= `contract`."},
        },
        "required": [POSITION_HEADER, CONTRACT_HEADER],
    }
    return {
        "asyncapi": ASYNCAPI,
        "id": "urn:carepath:vendor",
        "info": {
            "title": "carepath vendor event streams",
            "version": str(version),
            "description": DESCRIPTION.format(version=version, contract=vendor_contract(version)),
        },
        "servers": {
            "carepath": {
                "url": "{host}:{port}",
                "protocol": "amqp",
                "protocolVersion": "0-9-1",
                "description": "carepath's RabbitMQ (amqps in production: docs/tls.md).",
                "variables": {"host": {"default": "localhost"}, "port": {"default": "5672"}},
                "security": [{"vendorUser": []}],
            }
        },
        "defaultContentType": NATIVE_CONTENT_TYPE,
        "channels": {
            "vendor.{subscription}": {
                "description": f"The subscription's own quorum queue, bound from the exchange "
                f"`{VENDOR_EXCHANGE}` with the routing key `vendor.<name>`; a message the vendor "
                f"rejects (or that is delivered 10 times) goes to "
                f"`{dead_letter_queue('vendor.<name>')}`.",
                "parameters": {
                    "subscription": {
                        "description": "The subscription's name.",
                        "schema": {"type": "string", "pattern": NAME.pattern},
                    }
                },
                "subscribe": {
                    "operationId": "receiveEvents",
                    "summary": "The subscription's events, minimised for it; acknowledge each "
                    "after it is stored on the vendor's side.",
                    "bindings": {
                        "amqp": {"ack": True, "deliveryMode": 2, "bindingVersion": AMQP_BINDING}
                    },
                    "message": {
                        "oneOf": [{"$ref": f"#/components/messages/{n}"} for n in messages]
                    },
                },
                "bindings": {
                    "amqp": {
                        "is": "queue",
                        "queue": {
                            "name": "vendor.{subscription}",
                            "durable": True,
                            "exclusive": False,
                            "autoDelete": False,
                            "vhost": "/",
                        },
                        "bindingVersion": AMQP_BINDING,
                    }
                },
            }
        },
        "components": {
            "messages": messages,
            "schemas": schemas,
            "securitySchemes": {
                "vendorUser": {
                    "type": "userPassword",
                    "description": "The subscription's broker user `<prefix>vendor-<name>` and "
                    "the password handed over once at creation; it may read its queue only.",
                }
            },
            "correlationIds": {
                "CorrelationId": {
                    "description": "Groups the events of one piece of work across services.",
                    "location": "$message.payload#/correlation_id",
                }
            },
        },
    }


def path_of(version: int) -> str:
    return "asyncapi.yaml" if version == CURRENT_CONTRACT else f"asyncapi.v{version}.yaml"


class _Dumper(yaml.SafeDumper):
    """Multi-line text as YAML literal blocks, so the document reads as written."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def render() -> dict[str, str]:
    """Every AsyncAPI document, by path under docs/."""
    head = "# Generated from shared/events/ and services/streams/ by `make docs`; do not edit.\n"
    return {
        path_of(version): head
        + yaml.dump(
            document(version), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100
        )
        for version in sorted(CONTRACT_VERSIONS)
    }


def write(docs: Path) -> None:
    for path, text in render().items():
        (docs / path).write_text(text)


if __name__ == "__main__":
    write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
