"""Bulk import of a register extract: `python -m services.registry import FILE`.

The file is JSON (the demo's is infra/demo-registry.json):

    {"organisations": [{"her_id": "4201", "kind": "MUNICIPALITY", "name": "Ås kommune",
                        "parent_her_id": "", "orgnr": "974760673"}],
     "patients": [{"patient": {"system": "urn:oid:2.16.578.1.12.4.1.4.1", "value": "..."},
                   "residence": [{"municipality_her_id": "4201", "valid_from": "1990-01-01"}],
                   "temporary_residence": [{"municipality_her_id": "4202",
                                            "valid_from": "2024-11-01", "valid_to": null}],
                   "fastlege": [{"gp_her_id": "8134021", "gp_hpr_number": "9144900",
                                 "valid_from": "2019-01-01", "valid_to": null}]}]}

The whole file is checked before anything is written (a bad entry is named by its place and
field, and nothing changes); then the facts are recorded as the register adapter would record
them over gRPC, by the same domain rules: each organisation as `RegisterOrganisation` records
it (with its organisation number's holder, in one transaction), the patients' facts a few
hundred aggregates per transaction. Facts already recorded change nothing, so importing the
same file twice records nothing new.

`orgnr` (optional) is the organisation's number in Enhetsregisteret; a number must be unique in
the file, and one another organisation of the directory already holds is refused before
anything is written (unless the file gives that organisation another number).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from hashlib import sha256
from pathlib import Path
from typing import Any

from services.registry.application import RegistryApplication
from services.registry.domain import (
    Registration,
    RegistryKind,
    registration_id_for,
)
from shared import api
from shared.actors import Actor, OrgKind
from shared.domain import CarepathAggregate, CommandContext
from shared.errors import InvalidArgument, NotFound
from shared.ids import IdentifierError, parse_patient_identifier

BATCH = 300
MAX_NAME = 200


class ImportError_(ValueError):
    """The file cannot be imported; the message names the entry and field."""


@dataclass(frozen=True)
class OrganisationFact:
    """One checked organisation entry, recorded as RegisterOrganisation records it."""

    where: str
    her_id: str
    kind: RegistryKind
    name: str
    parent: str | None
    orgnr: str | None

    @property
    def command_id(self) -> str:
        return _command_id(self.her_id, self.kind, self.name, self.parent, self.orgnr)

    def record(self, app: RegistryApplication, ctx: CommandContext) -> int:
        """Record the entry; returns the events it recorded."""
        before = sum(o.version for o in app.organisations([self.her_id]))
        app.register_organisation(ctx, self.her_id, self.kind, self.name, self.parent, self.orgnr)
        return sum(o.version for o in app.organisations([self.her_id])) - before


@dataclass(frozen=True)
class Fact:
    """One checked fact and how it is recorded."""

    aggregate_id: Any
    what: str
    command_id: str
    apply: Callable[[CommandContext, CarepathAggregate | None], CarepathAggregate]


def _date(value: Any, where: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise ImportError_(f"{where}: is not a date (YYYY-MM-DD)") from exc


def _optional_date(value: Any, where: str) -> date | None:
    return None if value in (None, "") else _date(value, where)


def _period(entry: Any, where: str) -> tuple[date, date | None]:
    start = _date(entry.get("valid_from"), f"{where}.valid_from")
    end = _optional_date(entry.get("valid_to"), f"{where}.valid_to")
    if end is not None and end < start:
        raise ImportError_(f"{where}.valid_to: must not be before valid_from")
    return start, end


def _her_id(value: Any, where: str) -> str:
    try:
        return api.her_id(str(value or ""), where)
    except InvalidArgument as exc:
        raise ImportError_(str(exc)) from exc


def _hpr(value: Any, where: str) -> str:
    try:
        return api.hpr(str(value or ""), where)
    except InvalidArgument as exc:
        raise ImportError_(str(exc)) from exc


def _command_id(*parts: Any) -> str:
    """The same fact always has the same command id (a re-import is a retry)."""
    return "import:" + sha256(json.dumps(parts, default=str).encode()).hexdigest()[:40]


def _organisation_facts(entries: list[Any]) -> list[OrganisationFact]:
    facts = []
    numbers: dict[str, str] = {}
    for i, entry in enumerate(entries):
        where = f"organisations[{i}]"
        her_id = _her_id(entry.get("her_id"), f"{where}.her_id")
        try:
            kind = RegistryKind(str(entry.get("kind")))
        except ValueError as exc:
            raise ImportError_(f"{where}.kind: must be one of {list(RegistryKind)}") from exc
        name = str(entry.get("name") or "").strip()
        if not name or len(name) > MAX_NAME:
            raise ImportError_(f"{where}.name: is required (1–{MAX_NAME} characters)")
        parent_text = str(entry.get("parent_her_id") or "")
        parent = _her_id(parent_text, f"{where}.parent_her_id") if parent_text else None
        try:
            orgnr = api.orgnr(str(entry.get("orgnr") or ""), f"{where}.orgnr")
        except InvalidArgument as exc:
            raise ImportError_(str(exc)) from exc
        if orgnr is not None:
            if orgnr in numbers:
                raise ImportError_(f"{where}.orgnr: {orgnr} is given to {numbers[orgnr]} too")
            numbers[orgnr] = where
        facts.append(OrganisationFact(where, her_id, kind, name, parent, orgnr))
    return facts


def _patient_facts(entries: list[Any]) -> list[Fact]:
    facts = []
    for i, entry in enumerate(entries):
        where = f"patients[{i}]"
        given = entry.get("patient") or {}
        try:
            national_id = parse_patient_identifier(
                str(given.get("system", "")), str(given.get("value", ""))
            )
        except IdentifierError as exc:
            raise ImportError_(f"{where}.patient: {exc}") from exc
        patient = {"system": national_id.system, "value": national_id.value}
        #: (what identifies the fact, the Registration method recording it, its arguments)
        changes: list[tuple[tuple[Any, ...], str, tuple[Any, ...]]] = []
        for j, r in enumerate(entry.get("residence") or []):
            at = f"{where}.residence[{j}]"
            her = _her_id(r.get("municipality_her_id"), f"{at}.municipality_her_id")
            start = _date(r.get("valid_from"), f"{at}.valid_from")
            changes.append((("residence", her, start), "record_residence", (her, start)))
        for j, r in enumerate(entry.get("temporary_residence") or []):
            at = f"{where}.temporary_residence[{j}]"
            her = _her_id(r.get("municipality_her_id"), f"{at}.municipality_her_id")
            start, end = _period(r, at)
            changes.append(
                (("temporary", her, start, end), "record_temporary_residence", (her, start, end))
            )
        for j, r in enumerate(entry.get("fastlege") or []):
            at = f"{where}.fastlege[{j}]"
            her = _her_id(r.get("gp_her_id"), f"{at}.gp_her_id")
            hpr = _hpr(r.get("gp_hpr_number"), f"{at}.gp_hpr_number")
            start, end = _period(r, at)
            changes.append(
                (("fastlege", her, hpr, start, end), "assign_fastlege", (her, hpr, start, end))
            )
        for key, method, arguments in changes:

            def apply(
                ctx: CommandContext,
                found: CarepathAggregate | None,
                patient: dict[str, str] = patient,
                method: str = method,
                arguments: tuple[Any, ...] = arguments,
            ) -> CarepathAggregate:
                registration = found if found is not None else Registration.start(ctx, patient)
                getattr(registration, method)(ctx, *arguments)
                return registration

            facts.append(
                Fact(
                    registration_id_for(patient),
                    "registration",
                    _command_id(patient["value"], *key),
                    apply,
                )
            )
    return facts


def read_file(path: Path) -> list[OrganisationFact | Fact]:
    """Every fact of the file, checked; raises ImportError_ naming the first bad entry."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ImportError_(f"{path}: not a readable JSON file ({exc})") from exc
    if not isinstance(document, dict):
        raise ImportError_(f"{path}: expected an object with organisations and patients")
    try:
        organisations = _organisation_facts(list(document.get("organisations") or []))
        patients = _patient_facts(list(document.get("patients") or []))
        return [*organisations, *patients]
    except (AttributeError, TypeError) as exc:
        raise ImportError_(f"{path}: an entry is not an object ({exc})") from exc


def _in_order(
    app: RegistryApplication, organisations: list[OrganisationFact]
) -> list[OrganisationFact]:
    """The organisations in the order they can be recorded: an organisation number another
    organisation holds now is taken after that organisation is given its new one (or none);
    ImportError_ (nothing written) when the holder keeps it."""
    given = {o.her_id: o.orgnr for o in organisations}
    now, later = [], []
    for o in organisations:
        holder = app.orgnr_holder(o.orgnr) if o.orgnr is not None else None
        if holder is None or holder == o.her_id:
            now.append(o)
        elif holder in given and given[holder] != o.orgnr:
            later.append(o)
        else:
            raise ImportError_(
                f"{o.where}.orgnr: {o.orgnr} belongs to another organisation of the directory "
                f"(HER-id {holder})"
            )
    return now + later


def import_facts(
    app: RegistryApplication, facts: list[OrganisationFact | Fact], adapter: Actor
) -> int:
    """Record the facts as `adapter` (a REGISTRY caller); returns the events recorded. Raises
    ImportError_ before writing anything when an organisation number belongs to another
    organisation of the directory."""
    if adapter.org_kind is not OrgKind.REGISTRY:
        raise ValueError("the register adapter records register facts")
    now = datetime.now(UTC)
    organisations = [f for f in facts if isinstance(f, OrganisationFact)]
    patients = [f for f in facts if isinstance(f, Fact)]
    recorded = 0
    for entry in _in_order(app, organisations):
        ctx = CommandContext(entry.command_id, now, adapter, entry.command_id)
        recorded += entry.record(app, ctx)
    for start in range(0, len(patients), BATCH):
        touched: dict[Any, CarepathAggregate] = {}
        for fact in patients[start : start + BATCH]:
            ctx = CommandContext(fact.command_id, now, adapter, fact.command_id)
            found = touched.get(fact.aggregate_id)
            if found is None:
                try:
                    found = app.load(CarepathAggregate, fact.aggregate_id, fact.what)
                except NotFound:
                    found = None
            touched[fact.aggregate_id] = fact.apply(ctx, found)
        pending = [a for a in touched.values() if a.pending_events]
        recorded += sum(len(a.pending_events) for a in pending)
        if pending:
            app.save(*pending)
    return recorded
