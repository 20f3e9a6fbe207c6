"""nameko reactions of admissions: a discharge closes the stay.

Runs as its own process (never beside a gRPC server):

    PSYCOPG_WAIT_FUNC=wait_select python -m shared.run_reactions services.admissions.reactions

Only a PatientDischarged the discharges service published is taken (its `user_id`, checked by
the entrypoint), and the stay is closed only when the access policy lets the discharging
organisation close it (`AdmissionService/CloseStay`: the hospital of that stay); anything else
goes to the dead-letter queue with the reason.

Idempotent under redelivery: the close command's id derives from the PatientDischarged event's
id, so a second delivery returns the first result and writes nothing.
"""

from __future__ import annotations

import logging
from uuid import UUID

from services.admissions.api import resolvers
from services.admissions.application import AdmissionsApplication
from services.admissions.domain import CloseReason
from shared.errors import Conflict, DomainError, InvalidTransition, NotYetKnown
from shared.events import Envelope
from shared.events.discharges import PatientDischarged
from shared.reactions import (
    ApplicationProvider,
    NotApplied,
    policy_refusal,
    reaction,
    reaction_context,
)

log = logging.getLogger(__name__)


class AdmissionsReactions:
    name = "admissions_reactions"

    admissions = ApplicationProvider(AdmissionsApplication)

    @reaction("discharges", "PatientDischarged")
    def handle_patient_discharged(self, event: Envelope) -> None:
        discharged = event.payload(PatientDischarged)
        ctx = reaction_context(event, "discharge")
        stay = resolvers(self.admissions)["stay"](UUID(discharged.stay_id))
        refusal = policy_refusal("AdmissionService/CloseStay", event, stay)
        if refusal is not None:
            raise NotApplied(f"stay not closed: {refusal}")
        try:
            self.admissions.close_stay(ctx, UUID(discharged.stay_id), CloseReason.DISCHARGED)
        except InvalidTransition:
            log.debug("stay already closed by another path (event %s)", event.event_id)
        except (Conflict, NotYetKnown):
            raise  # retryable (the stay changed under the command): tried again later
        except DomainError as exc:  # e.g. the stay moved hospital after the discharge check
            raise NotApplied(f"stay not closed: {type(exc).__name__}: {exc}") from exc
