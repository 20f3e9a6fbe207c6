"""An organisation number belongs to one organisation of the directory at a time, also when
two register commands race for it (the real stores: SQLite and PostgreSQL)."""

from __future__ import annotations

import threading

from services.registry.application import RegistryApplication
from services.registry.domain import RegistryKind
from shared.errors import AlreadyExists
from tests.support import REGISTER_ADAPTER, ctx

ORGNR = "974760673"


def test_two_organisations_racing_for_one_number_leave_it_with_one(
    backend: dict[str, str],
) -> None:
    app = RegistryApplication.from_url(backend["registry"])
    try:
        her_ids = [str(5000 + n) for n in range(8)]
        outcomes: dict[str, str] = {}
        start = threading.Barrier(len(her_ids))

        def register(her_id: str) -> None:
            start.wait()
            try:
                app.register_organisation(
                    ctx(REGISTER_ADAPTER, f"race-{her_id}"), her_id, RegistryKind.GP,
                    f"Legekontor {her_id}", None,
                    ORGNR,
                )  # fmt: skip
                outcomes[her_id] = "OK"
            except AlreadyExists as exc:
                assert str(exc).startswith(f"orgnr: {ORGNR} belongs to another organisation")
                outcomes[her_id] = "ALREADY_EXISTS"

        threads = [threading.Thread(target=register, args=(h,)) for h in her_ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [h for h, outcome in outcomes.items() if outcome == "OK"]
        assert len(winners) == 1 and len(outcomes) == len(her_ids)
        assert app.orgnr_holder(ORGNR) == winners[0]
        with_number = [o.her_id for o in app.organisations(her_ids) if o.orgnr == ORGNR]
        assert with_number == winners
    finally:
        app.close()


def test_a_number_given_up_can_be_taken_and_a_repeated_command_changes_nothing(
    backend: dict[str, str],
) -> None:
    app = RegistryApplication.from_url(backend["registry"])
    try:
        first = app.register_organisation(
            ctx(REGISTER_ADAPTER, "a-1"), "6001", RegistryKind.HOSPITAL, "Sykehus A", None, ORGNR
        )
        again = app.register_organisation(
            ctx(REGISTER_ADAPTER, "a-1"), "6001", RegistryKind.HOSPITAL, "Sykehus A", None, ORGNR
        )
        assert again.version == first.version
        app.register_organisation(
            ctx(REGISTER_ADAPTER, "a-2"), "6001", RegistryKind.HOSPITAL, "Sykehus A", None
        )
        assert app.orgnr_holder(ORGNR) is None
        taken = app.register_organisation(
            ctx(REGISTER_ADAPTER, "b-1"), "6002", RegistryKind.HOSPITAL, "Sykehus B", None, ORGNR
        )
        assert (taken.orgnr, app.orgnr_holder(ORGNR)) == (ORGNR, "6002")
        assert [o.orgnr for o in app.organisations(["6001"])] == [None]
    finally:
        app.close()
