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
from typing import Any
from uuid import UUID

from services.admissions.api import resolvers
from services.admissions.application import AdmissionsApplication
from services.admissions.domain import CloseReason
from shared.errors import DomainError, InvalidTransition
from shared.reactions import (
    ApplicationProvider,
    DeadLetters,
    event_handler,
    policy_refusal,
    reaction_context,
)

log = logging.getLogger(__name__)


class AdmissionsReactions:
    name = "admissions_reactions"

    admissions = ApplicationProvider(AdmissionsApplication)
    park = DeadLetters()

    @event_handler("discharges", "PatientDischarged")  # type: ignore[untyped-decorator]
    def handle_patient_discharged(self, envelope: dict[str, Any]) -> None:
        ctx = reaction_context(envelope, "discharge")
        stay_id = UUID(envelope["data"]["stay_id"])
        stay = resolvers(self.admissions)["stay"](stay_id)
        refusal = policy_refusal("AdmissionService/CloseStay", envelope, stay)
        if refusal is not None:
            self.park(envelope, f"stay not closed: {refusal}")
            return
        try:
            self.admissions.close_stay(ctx, stay_id, CloseReason.DISCHARGED)
        except InvalidTransition:
            log.debug("stay already closed by another path (event %s)", envelope["event_id"])
        except DomainError as exc:  # e.g. the stay moved hospital after the discharge check
            self.park(envelope, f"stay not closed: {type(exc).__name__}: {exc}")
