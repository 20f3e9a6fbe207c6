"""Stay commands: load → change → save, idempotent on the client's command_id; and the two
queries (one stay, every stay of a patient)."""

from __future__ import annotations

import threading
from datetime import datetime
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from services.admissions.contract import CONTRACT
from services.admissions.domain import (
    AdmissionType,
    CloseReason,
    PatientStays,
    Stay,
    patient_stays_id_for,
    stay_id_for,
)
from shared.apprec import AppRecStatus
from shared.domain import CommandContext
from shared.errors import Conflict, NotFound
from shared.store import CONFLICT_RETRIES, CarepathApplication

WHAT = "stay"
INDEX = "patient's stays"

#: Admissions of one patient in this process are serialised by one of these (chosen by the
#: patient's index id), so they never race on the index; other processes still may, and retry.
_INDEX_LOCKS = tuple(threading.Lock() for _ in range(64))


def _index_lock(index_id: UUID) -> threading.Lock:
    return _INDEX_LOCKS[index_id.int % len(_INDEX_LOCKS)]


class AdmissionsApplication(CarepathApplication):
    name = "admissions"
    contract = CONTRACT
    internal_event_types = frozenset({"StayIndexCreated", "StayIndexed"})

    def admit_patient(
        self,
        ctx: CommandContext,
        patient: dict[str, str],
        ward: str,
        admission_type: AdmissionType,
        referral_id: UUID | None,
        municipality_her_id: str,
        municipal_services_likely: bool,
        existing_service_user: bool,
    ) -> Stay:
        """Create the stay and add it to the patient's index in one transaction.

        Admissions of one patient are serialised within this process; one from another
        process conflicts on the index and is retried with the index reloaded."""
        stay_id = stay_id_for(ctx.actor.her_id, ctx.command_id)
        index_id = patient_stays_id_for(patient)
        with _index_lock(index_id):
            for _ in range(CONFLICT_RETRIES):
                try:
                    return self.first_result(Stay, stay_id, ctx, WHAT)  # a repeated admission
                except NotFound:
                    pass
                stay = Stay.admit(
                    ctx,
                    patient,
                    ward,
                    admission_type,
                    referral_id,
                    municipality_her_id,
                    municipal_services_likely,
                    existing_service_user,
                )
                try:
                    index = self.load(PatientStays, index_id, INDEX)
                except NotFound:
                    index = PatientStays.start(ctx, patient, stay.id)
                else:
                    index.add(ctx, patient, stay.id)
                try:
                    self.save_command(stay, index)
                except IntegrityError:  # the same command, or another process's admission, raced
                    continue
                return stay
        raise Conflict("the patient's stays changed concurrently; retry the command")

    def send_admission_notice(self, ctx: CommandContext, stay_id: UUID) -> Stay:
        return self.change(Stay, stay_id, ctx, WHAT, lambda s: s.send_admission_notice(ctx))

    def record_admission_report(self, ctx: CommandContext, stay_id: UUID) -> Stay:
        return self.change(Stay, stay_id, ctx, WHAT, lambda s: s.record_admission_report(ctx))

    def send_health_information(self, ctx: CommandContext, stay_id: UUID) -> Stay:
        return self.change(Stay, stay_id, ctx, WHAT, lambda s: s.send_health_information(ctx))

    def record_message_receipt(
        self,
        ctx: CommandContext,
        stay_id: UUID,
        message_id: UUID,
        status: AppRecStatus,
        errors: list[dict[str, str]],
    ) -> Stay:
        return self.change(
            Stay,
            stay_id,
            ctx,
            WHAT,
            lambda s: s.record_message_receipt(ctx, message_id, status, errors),
        )

    def transfer_patient(
        self, ctx: CommandContext, stay_id: UUID, to_hospital_her_id: str, to_ward: str
    ) -> Stay:
        return self.change(
            Stay,
            stay_id,
            ctx,
            WHAT,
            lambda s: s.transfer(ctx, to_hospital_her_id, to_ward),
        )

    def close_stay(self, ctx: CommandContext, stay_id: UUID, reason: CloseReason) -> Stay:
        """Discharge. Also called by the discharges service's reaction."""
        return self.change(Stay, stay_id, ctx, WHAT, lambda s: s.close(ctx, reason))

    def get_stay(self, stay_id: UUID) -> Stay:
        return self.load(Stay, stay_id, WHAT)

    def list_stays(self, patient: dict[str, str]) -> list[Stay]:
        """Every stay of the patient, newest admission first."""
        try:
            index = self.load(PatientStays, patient_stays_id_for(patient), INDEX)
        except NotFound:
            return []
        stays = [self.load(Stay, UUID(s), WHAT) for s in index.stay_ids]
        return sorted(
            stays, key=lambda s: (datetime.fromisoformat(s.admitted_at), str(s.id)), reverse=True
        )
