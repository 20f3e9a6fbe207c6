"""Stay commands: load → change → save (`CarepathApplication.transact`), idempotent on the
client's command_id; and the two queries (one stay, every stay of a patient)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

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
from shared.domain import CarepathAggregate, CommandContext
from shared.errors import NotFound
from shared.store import CarepathApplication

WHAT = "stay"
INDEX = "patient's stays"


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
        """Create the stay and add it to the patient's index in one transaction. Admissions of
        one patient are run one at a time in this process (`transact`'s `serial`: the index);
        one from another process conflicts on the index and is attempted again with the index
        reloaded. A repeated admission answers with its first stay."""
        stay_id = stay_id_for(ctx.actor.her_id, ctx.command_id)
        index_id = patient_stays_id_for(patient)

        def attempt() -> tuple[Stay, tuple[CarepathAggregate, ...]]:
            try:
                return self.first_result(Stay, stay_id, ctx, WHAT), ()  # a repeated admission
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
            return stay, (stay, index)

        return self.transact(attempt, "the patient's stays", serial=index_id)

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
