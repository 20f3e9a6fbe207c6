"""nameko reactions of admissions: a discharge closes the stay.

Runs as its own process (never beside a gRPC server):

    PSYCOPG_WAIT_FUNC=wait_select nameko run --config infra/nameko.yml services.admissions.reactions

Idempotent under redelivery: the close command's id derives from the PatientDischarged event's
id, so a second delivery returns the first result and writes nothing.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from nameko.events import event_handler

from services.admissions.application import AdmissionsApplication
from services.admissions.domain import CloseReason
from shared.errors import DomainError, InvalidTransition
from shared.reactions import ApplicationProvider, DeadLetters, reaction_context

log = logging.getLogger(__name__)


class AdmissionsReactions:
    name = "admissions_reactions"

    admissions = ApplicationProvider(AdmissionsApplication)
    park = DeadLetters()

    @event_handler("discharges", "PatientDischarged")  # type: ignore[untyped-decorator]
    def handle_patient_discharged(self, envelope: dict[str, Any]) -> None:
        ctx = reaction_context(envelope, "discharge")
        stay_id = UUID(envelope["data"]["stay_id"])
        try:
            self.admissions.close_stay(ctx, stay_id, CloseReason.DISCHARGED)
        except InvalidTransition:
            log.debug("stay already closed by another path (event %s)", envelope["event_id"])
        except DomainError as exc:  # e.g. the stay moved hospital after the discharge check
            self.park(envelope, f"stay not closed: {type(exc).__name__}: {exc}")
