"""Register facts and the patient's blocks.

- `Registration` (one per patient): where the patient lives (Folkeregisteret's residence and
  temporary residence — oppholdskommune) and who their fastlege is (Fastlegeregisteret), each
  fact with its dates. Only the register adapter records them.
- `Organisation` (one per HER-id): Adresseregisteret's entry — kind, name, parent and
  organisation number (Enhetsregisteret's, which HelseID names callers by).
- `OrgnrHolder` (one per organisation number): which HER-id holds it. Saved in one transaction
  with the organisation's own event, it keeps an organisation number to one organisation at a
  time (bookkeeping: its events are never published).
- `AccessBlocks` (one per patient): the organisations and health professionals the patient has
  blocked (sperring), and lifted blocks.

Each public method checks the rule, then triggers a past-tense event; the `@event` methods only
apply state, so replaying history never re-checks rules. Recording a fact that is already
recorded triggers nothing.
"""

from __future__ import annotations

import enum
from datetime import date
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from shared.actors import OrgKind
from shared.domain import CarepathAggregate, CommandContext, command_key
from shared.errors import AlreadyExists, InvalidArgument, InvalidTransition, NotFound
from shared.registers import Period, Record, separate, successive
from shared.times import OSLO

__all__ = [
    "AccessBlocks",
    "Organisation",
    "OrgnrHolder",
    "Registration",
    "RegistryKind",
    "access_blocks_id_for",
    "organisation_id_for",
    "orgnr_holder_id_for",
    "registration_id_for",
]


class RegistryKind(enum.StrEnum):
    """Kinds of organisation in the directory."""

    MUNICIPALITY = "MUNICIPALITY"
    GP = "GP"
    HOSPITAL = "HOSPITAL"
    REGISTRY = "REGISTRY"


def registration_id_for(patient: dict[str, str]) -> UUID:
    return uuid5(NAMESPACE_URL, f"carepath:registration:{patient['system']}|{patient['value']}")


def organisation_id_for(her_id: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"carepath:organisation:{her_id}")


def orgnr_holder_id_for(orgnr: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"carepath:orgnr:{orgnr}")


def access_blocks_id_for(patient: dict[str, str]) -> UUID:
    return uuid5(NAMESPACE_URL, f"carepath:access-blocks:{patient['system']}|{patient['value']}")


def _check_period(valid_from: date, valid_to: date | None) -> None:
    if valid_to is not None and valid_to < valid_from:
        raise InvalidArgument("valid_to", "must not be before valid_from")


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _holds(records: list[Record], record: Record, same_municipality: bool = False) -> bool:
    """Whether `record` is already what stands for its first day (and, for temporary
    residences, municipality): recording it again would change nothing."""
    for r in reversed(records):
        if r.valid_from == record.valid_from and (
            not same_municipality or r.her_id == record.her_id
        ):
            return r == record
    return False


class Registration(CarepathAggregate):
    """What the national registers say about one patient."""

    @classmethod
    def start(cls, ctx: CommandContext, patient: dict[str, str]) -> Registration:
        return cls(meta=ctx.meta(patient))

    @staticmethod
    def create_id(meta: dict[str, Any], **_: Any) -> UUID:
        return registration_id_for(meta["patient"])

    @event("RegistrationStarted")
    def __init__(self, meta: dict[str, Any]) -> None:
        self.patient: dict[str, str] = meta["patient"]
        self.residence: list[Record] = []
        self.temporary_residence: list[Record] = []
        self.fastlege: list[Record] = []
        #: The death, once recorded: its metadata (the moment is its occurred_at, the recorder
        #: its actor).
        self.death: dict[str, Any] | None = None

    # --- reading ---------------------------------------------------------------------------

    def residence_periods(self) -> list[Period]:
        return successive(self.residence)

    def temporary_residence_periods(self) -> list[Period]:
        return separate(self.temporary_residence)

    def fastlege_periods(self) -> list[Period]:
        return successive(self.fastlege)

    # --- commands --------------------------------------------------------------------------

    def record_residence(
        self, ctx: CommandContext, municipality_her_id: str, valid_from: date
    ) -> None:
        """Folkeregisteret: the patient lives in the municipality from `valid_from`."""
        if _holds(self.residence, Record(municipality_her_id, valid_from)):
            return
        self._residence_recorded(
            meta=ctx.meta(self.patient),
            municipality_her_id=municipality_her_id,
            valid_from=valid_from.isoformat(),
        )

    @event("ResidenceRecorded")
    def _residence_recorded(
        self, meta: dict[str, Any], municipality_her_id: str, valid_from: str
    ) -> None:
        self.residence.append(Record(municipality_her_id, date.fromisoformat(valid_from)))
        self._handled(meta)

    def record_temporary_residence(
        self,
        ctx: CommandContext,
        municipality_her_id: str,
        valid_from: date,
        valid_to: date | None,
    ) -> None:
        """The oppholdskommune for a period (open-ended while `valid_to` is None)."""
        _check_period(valid_from, valid_to)
        record = Record(municipality_her_id, valid_from, valid_to)
        if _holds(self.temporary_residence, record, same_municipality=True):
            return
        self._temporary_residence_recorded(
            meta=ctx.meta(self.patient),
            municipality_her_id=municipality_her_id,
            valid_from=valid_from.isoformat(),
            valid_to=valid_to.isoformat() if valid_to else None,
        )

    @event("TemporaryResidenceRecorded")
    def _temporary_residence_recorded(
        self, meta: dict[str, Any], municipality_her_id: str, valid_from: str, valid_to: str | None
    ) -> None:
        self.temporary_residence.append(
            Record(municipality_her_id, date.fromisoformat(valid_from), _day(valid_to))
        )
        self._handled(meta)

    def assign_fastlege(
        self,
        ctx: CommandContext,
        gp_her_id: str,
        gp_hpr: str,
        valid_from: date,
        valid_to: date | None,
    ) -> None:
        """Fastlegeregisteret: the patient is on this GP office's and doctor's list."""
        _check_period(valid_from, valid_to)
        if _holds(self.fastlege, Record(gp_her_id, valid_from, valid_to, gp_hpr)):
            return
        self._fastlege_assigned(
            meta=ctx.meta(self.patient),
            gp_her_id=gp_her_id,
            gp_hpr=gp_hpr,
            valid_from=valid_from.isoformat(),
            valid_to=valid_to.isoformat() if valid_to else None,
        )

    @event("FastlegeAssigned")
    def _fastlege_assigned(
        self,
        meta: dict[str, Any],
        gp_her_id: str,
        gp_hpr: str,
        valid_from: str,
        valid_to: str | None,
    ) -> None:
        self.fastlege.append(
            Record(gp_her_id, date.fromisoformat(valid_from), _day(valid_to), gp_hpr)
        )
        self._handled(meta)

    def record_death(self, ctx: CommandContext) -> None:
        """The patient died at ctx.occurred_at (recorded once: a second recording, by anyone,
        is ALREADY_EXISTS; the same command again is answered with its first result by the
        application)."""
        if self.__dict__.get("death") is not None:
            raise AlreadyExists("the patient's death is recorded already")
        died_on = ctx.occurred_at.astimezone(OSLO).date()
        self._died(meta=ctx.meta(self.patient), died_on=died_on.isoformat())

    @event("PatientDied")
    def _died(self, meta: dict[str, Any], died_on: str) -> None:
        self.death = {**meta, "died_on": died_on}
        self._handled(meta)


class Organisation(CarepathAggregate):
    """One communication party of Adresseregisteret."""

    # Its two events are declared with their class versions (eventsourcing's upcasting): at
    # version 2 both carry the organisation number. Before organisation numbers (428c37b) they
    # were stored without the field, and until this declaration without a class version (1);
    # the upcasters bring every stored event to version 2 as it is read, so the handlers below
    # see one shape.

    class OrganisationRegistered(CarepathAggregate.Created):
        meta: dict[str, Any]
        her_id: str
        kind: str
        name: str
        parent_her_id: str | None
        orgnr: str | None

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state.setdefault("orgnr", None)  # stored before organisation numbers: none

    class OrganisationChanged(CarepathAggregate.Event):
        meta: dict[str, Any]
        kind: str
        name: str
        parent_her_id: str | None
        orgnr: str | None

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state.setdefault("orgnr", None)  # stored before organisation numbers: none

    @classmethod
    def register(
        cls,
        ctx: CommandContext,
        her_id: str,
        kind: RegistryKind,
        name: str,
        parent_her_id: str | None,
        orgnr: str | None = None,
    ) -> Organisation:
        if parent_her_id == her_id:
            raise InvalidArgument("parent_her_id", "must differ from the organisation's HER-id")
        return cls(
            meta=ctx.meta({}),
            her_id=her_id,
            kind=kind.value,
            name=name,
            parent_her_id=parent_her_id,
            orgnr=orgnr,
        )

    @staticmethod
    def create_id(her_id: str, **_: Any) -> UUID:
        return organisation_id_for(her_id)

    @event(OrganisationRegistered)
    def __init__(
        self,
        meta: dict[str, Any],
        her_id: str,
        kind: str,
        name: str,
        parent_her_id: str | None,
        orgnr: str | None,
    ) -> None:
        self.her_id = her_id
        self.kind = RegistryKind(kind)
        self.name = name
        self.parent_her_id = parent_her_id
        self.orgnr = orgnr
        self._handled(meta)

    def change(
        self,
        ctx: CommandContext,
        kind: RegistryKind,
        name: str,
        parent_her_id: str | None,
        orgnr: str | None = None,
    ) -> None:
        """The directory's entry changed (a new name, another parent, another organisation
        number); same facts: nothing."""
        if parent_her_id == self.her_id:
            raise InvalidArgument("parent_her_id", "must differ from the organisation's HER-id")
        if (kind, name, parent_her_id, orgnr) == (
            self.kind,
            self.name,
            self.parent_her_id,
            self.orgnr,
        ):
            return
        self._changed(
            meta=ctx.meta({}), kind=kind.value, name=name, parent_her_id=parent_her_id, orgnr=orgnr
        )

    @event(OrganisationChanged)
    def _changed(
        self,
        meta: dict[str, Any],
        kind: str,
        name: str,
        parent_her_id: str | None,
        orgnr: str | None,
    ) -> None:
        self.kind = RegistryKind(kind)
        self.name = name
        self.parent_her_id = parent_her_id
        self.orgnr = orgnr
        self._handled(meta)


class OrgnrHolder(CarepathAggregate):
    """Which organisation holds one organisation number (None: nobody now)."""

    @classmethod
    def take(cls, ctx: CommandContext, orgnr: str, her_id: str) -> OrgnrHolder:
        return cls(meta=ctx.meta({}), orgnr=orgnr, her_id=her_id)

    @staticmethod
    def create_id(orgnr: str, **_: Any) -> UUID:
        return orgnr_holder_id_for(orgnr)

    @event("OrgnrTaken")
    def __init__(self, meta: dict[str, Any], orgnr: str, her_id: str) -> None:
        self.orgnr = orgnr
        self.her_id: str | None = her_id
        self._handled(meta)

    def give_to(self, ctx: CommandContext, her_id: str) -> None:
        """`her_id` holds the number from now on; ALREADY_EXISTS (naming `orgnr`) while
        another organisation holds it."""
        if self.her_id == her_id:
            return
        if self.her_id is not None:
            raise AlreadyExists(
                f"orgnr: {self.orgnr} belongs to another organisation of the directory "
                f"(HER-id {self.her_id}); change or clear that entry first",
                field="orgnr",
            )
        self._given(meta=ctx.meta({}), her_id=her_id)

    @event("OrgnrGiven")
    def _given(self, meta: dict[str, Any], her_id: str) -> None:
        self.her_id = her_id
        self._handled(meta)

    def release(self, ctx: CommandContext, her_id: str) -> None:
        """`her_id` no longer holds the number (its entry has another, or none)."""
        if self.her_id != her_id:
            return
        self._released(meta=ctx.meta({}))

    @event("OrgnrReleased")
    def _released(self, meta: dict[str, Any]) -> None:
        self.her_id = None
        self._handled(meta)


class AccessBlocks(CarepathAggregate):
    """The patient's blocks (sperring): parties refused the patient's data."""

    @classmethod
    def start(cls, ctx: CommandContext, patient: dict[str, str]) -> AccessBlocks:
        return cls(meta=ctx.meta(patient))

    @staticmethod
    def create_id(meta: dict[str, Any], **_: Any) -> UUID:
        return access_blocks_id_for(meta["patient"])

    @event("AccessBlocksStarted")
    def __init__(self, meta: dict[str, Any]) -> None:
        self.patient: dict[str, str] = meta["patient"]
        self.blocks: dict[str, dict[str, str | None]] = {}

    def active_block_of(self, her_id: str | None, hpr: str | None) -> str | None:
        for block_id, block in self.blocks.items():
            if block["lifted_at"] is None and (block["her_id"], block["hpr"]) == (her_id, hpr):
                return block_id
        return None

    def block(self, ctx: CommandContext, her_id: str | None, hpr: str | None) -> None:
        """Block an organisation (HER-id) or a person (HPR); blocking a party already blocked
        changes nothing."""
        if (her_id is None) == (hpr is None):
            raise InvalidArgument("party", "give the HER-id of an organisation or an HPR-number")
        if self.active_block_of(her_id, hpr) is not None:
            return
        block_id = str(uuid5(self.id, command_key(ctx.actor.her_id, ctx.command_id)))
        self._blocked(meta=ctx.meta(self.patient), block_id=block_id, her_id=her_id, hpr=hpr)

    @event("AccessBlocked")
    def _blocked(
        self, meta: dict[str, Any], block_id: str, her_id: str | None, hpr: str | None
    ) -> None:
        self.blocks[block_id] = {
            "her_id": her_id,
            "hpr": hpr,
            "blocked_at": meta["occurred_at"],
            "lifted_at": None,
        }
        self._handled(meta)

    def lift(self, ctx: CommandContext, block_id: str) -> None:
        block = self.blocks.get(block_id)
        if block is None:
            raise NotFound("block not found")
        if block["lifted_at"] is not None:
            raise InvalidTransition("the block", "LIFTED", "lift it")
        self._lifted(meta=ctx.meta(self.patient), block_id=block_id)

    @event("AccessBlockLifted")
    def _lifted(self, meta: dict[str, Any], block_id: str) -> None:
        self.blocks[block_id]["lifted_at"] = meta["occurred_at"]
        self._handled(meta)


#: Caller kinds the directory may name (a citizen is not an organisation).
DIRECTORY_KINDS = {OrgKind(k.value): k for k in RegistryKind}
