"""The discharges service's own view of the stays, kept from the admissions events.

Runs as its own process (never beside a gRPC server):

    PSYCOPG_WAIT_FUNC=wait_select python -m shared.run_reactions services.discharges.reactions

(`PSYCOPG_WAIT_FUNC=wait_select` is required on PostgreSQL: psycopg 3 otherwise blocks
eventlet's hub.)

Why a view and not a gRPC call to the admissions service on each command: availability and
coupling. The discharges service keeps accepting readiness and discharges while admissions is
down or slow, and no command waits on another service's latency (no synchronous chain between
the services; only the broker joins them). The price is eventual consistency: the view lags
the admissions store by the relay's and this consumer's delay (normally well under a second).
A readiness or discharge command for a stay admitted moments ago may be refused: the access
policy finds no such stay in this view yet and answers PERMISSION_DENIED, the same answer as
for a stay that does not exist or is not the caller's (a refusal never tells which), so that
caller retries by hand for a while (infra/demo.py `once_related`). Past the policy, a stay
the view does not know is UNAVAILABLE ("not known to discharges yet", NotYetKnown), which the
clients' retry policy retries. A stay closed moments ago may likewise still be accepted as open
until StayClosed arrives; the admissions service then refuses the close it is asked for and
the discharge reaction there treats an already closed stay as done.

Only events the admissions service published are taken (their `user_id`, checked by the
entrypoint): the view follows the admissions store and acts on no other aggregate, so it needs
no further decision of the access policy.

Updates are idempotent and order-tolerant (keyed on the stay's aggregate_version), so
redelivery and reordering cannot corrupt the view.
"""

from __future__ import annotations

import logging
from typing import Any

from nameko.extensions import DependencyProvider

from services.discharges.known_stays import KnownStays
from shared import config
from shared.events import Envelope
from shared.events.admissions import PatientAdmitted, PatientTransferred, StayClosed
from shared.reactions import reaction
from shared.retry import until_available

log = logging.getLogger(__name__)


class Stays(DependencyProvider):  # type: ignore[misc]
    """The known-stays view in the discharges service's database (one per container)."""

    def setup(self) -> None:
        url = config.StoreSettings(config.database_url("discharges")).sqlalchemy_url()
        self.stays = until_available(lambda: KnownStays(url), log, "known stays")

    def stop(self) -> None:
        self.stays.close()

    def get_dependency(self, worker_ctx: Any) -> KnownStays:
        return self.stays


class DischargeStays:
    name = "discharges_stays"

    stays = Stays()

    @reaction("admissions", "PatientAdmitted")
    def handle_patient_admitted(self, event: Envelope) -> None:
        admitted = event.payload(PatientAdmitted)
        self.stays.admitted(
            event.aggregate_id,
            event.patient,
            admitted.hospital_her_id,
            admitted.home_municipality_her_id,
        )
        log.debug("stay known: %s", event.event_id)

    @reaction("admissions", "PatientTransferred")
    def handle_patient_transferred(self, event: Envelope) -> None:
        transferred = event.payload(PatientTransferred)
        self.stays.transferred(
            event.aggregate_id,
            event.patient,
            event.aggregate_version,
            transferred.to_hospital_her_id,
        )
        log.debug("stay transferred: %s", event.event_id)

    @reaction("admissions", "StayClosed")
    def handle_stay_closed(self, event: Envelope) -> None:
        event.payload(StayClosed)
        self.stays.closed(
            event.aggregate_id, event.patient, event.aggregate_version, event.actor["her_id"]
        )
        log.debug("stay closed: %s", event.event_id)
