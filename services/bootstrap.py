"""What each service with a store is made of, named once: its application and its gRPC api
module.

`python -m services.<name>` serves, relays and migrates the service of this table
(shared.process.service_main, wired by shared/bootstrap.py); the pathway's rebuild reads their
stores; the tests build the same graph from it (tests/support.py). It is the one module that
knows every service: shared/ knows none.
"""

from __future__ import annotations

from services.admissions import api as admissions_api
from services.admissions.application import AdmissionsApplication
from services.correspondence import api as correspondence_api
from services.correspondence.application import CorrespondenceApplication
from services.discharges import api as discharges_api
from services.discharges.application import DischargesApplication
from services.medications import api as medications_api
from services.medications.application import MedicationsApplication
from services.municipal import api as municipal_api
from services.municipal.application import MunicipalApplication
from services.referrals import api as referrals_api
from services.referrals.application import ReferralsApplication
from services.registry import api as registry_api
from services.registry.application import RegistryApplication
from services.streams import api as streams_api
from services.streams.application import StreamsApplication
from shared.bootstrap import DomainService

REFERRALS = DomainService(ReferralsApplication, referrals_api)
ADMISSIONS = DomainService(AdmissionsApplication, admissions_api)
DISCHARGES = DomainService(DischargesApplication, discharges_api)
MEDICATIONS = DomainService(MedicationsApplication, medications_api)
REGISTRY = DomainService(RegistryApplication, registry_api)
MUNICIPAL = DomainService(MunicipalApplication, municipal_api)
CORRESPONDENCE = DomainService(CorrespondenceApplication, correspondence_api)
#: The vendors' subscriptions: a service with a store of its own, not a source of the pathway.
STREAMS = DomainService(StreamsApplication, streams_api)

#: The domain services whose events make the pathway, by name, in the order their stores are
#: read on a rebuild (and every test system runs them).
DOMAIN_SERVICES: dict[str, DomainService] = {  # type: ignore[type-arg]
    service.name: service
    for service in (
        REFERRALS,
        ADMISSIONS,
        DISCHARGES,
        MEDICATIONS,
        REGISTRY,
        MUNICIPAL,
        CORRESPONDENCE,
    )
}
