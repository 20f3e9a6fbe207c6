"""The viewer's sessions and its same-origin rule, on their own (the browser tests drive them
through the real viewer): a coordinator who walks away is signed out, an open page that only
refreshes itself does not keep them signed in, no session outlives its token, references mean
something only in their own session, and only the viewer's own pages may post."""

from __future__ import annotations

from starlette.requests import Request

from services.viewer.guard import same_origin
from services.viewer.session import Sessions
from shared.actors import Actor, OrgKind
from tests.support import make_fnr

COORDINATOR = Actor(her_id="4201", org_kind=OrgKind.MUNICIPALITY, hpr="1203921")
PATIENT = ("pasient", "urn:oid:2.16.578.1.12.4.1.4.1", make_fnr(12, 3, 42, 480))
OWN = "https://viewer.example.no"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def sessions(clock: Clock, idle: float = 900, most: float = 8 * 3600) -> Sessions:
    return Sessions(idle_seconds=idle, max_seconds=most, clock=clock)


def test_a_coordinator_who_does_nothing_for_the_idle_time_is_signed_out() -> None:
    clock = Clock()
    store = sessions(clock)
    session = store.start("carepath_sesjon", COORDINATOR, "token", clock.now + 3600)
    clock.now += 899
    assert store.get(session.id) is session  # a click just in time starts the idle time again
    clock.now += 899
    assert store.get(session.id) is session
    clock.now += 900
    assert store.get(session.id) is None
    assert store.get(session.id) is None  # gone for good


def test_an_open_page_refreshing_itself_does_not_keep_the_session_alive() -> None:
    clock = Clock()
    store = sessions(clock)
    session = store.start("carepath_sesjon", COORDINATOR, "token", clock.now + 3600)
    for _ in range(4):  # a background refresh every 200 s
        clock.now += 200
        assert store.get(session.id, activity=False) is session
    assert store.remaining(session) == 100  # counted from sign-in, the last thing the user did
    clock.now += 100
    assert store.get(session.id, activity=False) is None


def test_no_session_outlives_its_token_nor_the_longest_session() -> None:
    clock = Clock()
    store = sessions(clock, idle=900, most=8 * 3600)
    short = store.start("carepath_sesjon", COORDINATOR, "token", clock.now + 600)
    long = store.start("carepath_sesjon", COORDINATOR, "token", clock.now + 10 * 24 * 3600)
    for _ in range(40):  # busy all day: a click every 15 minutes minus one second
        clock.now += 899
        store.get(long.id)
        store.get(short.id)
    assert store.get(short.id) is None  # its token expired after 10 minutes
    assert store.get(long.id) is None  # 8 hours at most, however busy


def test_signing_in_gives_a_new_session_id_and_signing_out_ends_it_at_once() -> None:
    clock = Clock()
    store = sessions(clock)
    first = store.start("carepath_sesjon", COORDINATOR, "token", clock.now + 3600)
    second = store.start("carepath_sesjon", COORDINATOR, "token", clock.now + 3600)
    assert first.id != second.id and first.csrf != second.csrf
    assert store.end(first.id) is first
    assert store.get(first.id) is None
    assert store.get(second.id) is second


def test_a_patient_reference_means_the_patient_only_in_its_own_session() -> None:
    clock = Clock()
    store = sessions(clock)
    mine = store.start("carepath_sesjon", COORDINATOR, "token", clock.now + 3600)
    theirs = store.start("carepath_sesjon", COORDINATOR, "token", clock.now + 3600)
    reference = mine.reference(PATIENT)
    assert mine.reference(PATIENT) == reference  # the same link every time
    assert mine.resolve(reference) == PATIENT
    assert theirs.resolve(reference) is None
    assert theirs.reference(PATIENT) != reference
    assert PATIENT[2] not in reference and PATIENT[2][:6] not in reference


def post(**headers: str) -> Request:
    raw = [(k.lower().replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "POST", "headers": raw, "path": "/logg-ut"})


def test_only_the_viewers_own_pages_may_post() -> None:
    assert same_origin(post(origin=OWN), OWN)
    assert same_origin(post(origin="HTTPS://Viewer.Example.no"), OWN)
    # Our pages are served with Referrer-Policy: no-referrer, so browsers send Origin: null.
    assert same_origin(post(origin="null", sec_fetch_site="same-origin"), OWN)
    assert same_origin(post(referer=f"{OWN}/arbeidsliste"), OWN)

    assert not same_origin(post(origin="https://angriper.test"), OWN)
    assert not same_origin(post(origin="null", sec_fetch_site="cross-site"), OWN)
    assert not same_origin(post(origin="null", sec_fetch_site="same-site"), OWN)
    assert not same_origin(post(origin=OWN, sec_fetch_site="cross-site"), OWN)
    assert not same_origin(post(origin="null"), OWN)  # no sign of where it came from
    assert not same_origin(post(), OWN)
    assert not same_origin(post(referer="https://angriper.test/premie"), OWN)
    assert not same_origin(post(origin="http://viewer.example.no"), OWN)  # not over TLS
