"""`python -m services.registry import FILE` on the real stores (SQLite and PostgreSQL): a
register extract becomes register facts; importing it again records nothing; a bad entry is
named by its place and field, and nothing of the file is recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

from services.registry.application import RegistryApplication
from shared.ids import FNR_SYSTEM
from tests.support import ROOT, events_in, make_fnr

DEMO = ROOT / "infra" / "demo-registry.json"


def run_import(url: str, path: Path, var: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "REGISTRY_DATABASE_URL": url,
        "CAREPATH_VAR_DIR": str(var),
        "LOG_LEVEL": "INFO",
    }
    return subprocess.run(
        [sys.executable, "-m", "services.registry", "import", str(path)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_demo_extract_becomes_register_facts_once(
    backend: dict[str, str], tmp_path: Path
) -> None:
    first = run_import(backend["registry"], DEMO, tmp_path)
    assert first.returncode == 0, first.stderr
    app = RegistryApplication.from_url(backend["registry"])
    try:
        recorded = events_in(app)
        patient = {"system": FNR_SYSTEM, "value": make_fnr(12, 3, 42, 480)}  # the demo's
        registration = app.get_registration(patient)
        (home,) = registration.residence_periods()
        (fastlege,) = registration.fastlege_periods()
        assert (home.her_id, home.valid_from, home.valid_to) == ("4201", date(1971, 6, 1), None)
        assert (fastlege.her_id, fastlege.hpr) == ("8134021", "9144900")
        names = {o.her_id: o.name for o in app.organisations(["4201", "59", "88001"])}
        assert names == {
            "4201": "Fjordvik kommune",
            "59": "Sykehuset Fjordvik",
            "88001": "Fjordvik helsehus, korttidsavdeling",
        }
        again = run_import(backend["registry"], DEMO, tmp_path)
        assert again.returncode == 0, again.stderr
        assert "0 new events" in again.stderr
        assert events_in(app) == recorded
    finally:
        app.close()


def test_a_bad_entry_is_named_and_nothing_is_imported(
    backend: dict[str, str], tmp_path: Path
) -> None:
    extract = json.loads(DEMO.read_text())
    extract["patients"].append(
        {
            "patient": {"system": FNR_SYSTEM, "value": make_fnr(3, 3, 33, 480)},
            "fastlege": [{"gp_her_id": "8134021", "gp_hpr_number": "9144900",
                          "valid_from": "2024-05-01", "valid_to": "2024-04-01"}],
        }
    )  # fmt: skip
    bad = tmp_path / "extract.json"
    bad.write_text(json.dumps(extract))
    result = run_import(backend["registry"], bad, tmp_path)
    assert result.returncode != 0
    assert "patients[1].fastlege[0].valid_to: must not be before valid_from" in result.stderr
    app = RegistryApplication.from_url(backend["registry"])
    try:
        assert events_in(app) == 0
    finally:
        app.close()


def organisation_numbers(app: RegistryApplication, her_ids: list[str]) -> dict[str, str | None]:
    return {o.her_id: o.orgnr for o in app.organisations(her_ids)}


def test_each_demo_organisation_gets_its_own_organisation_number(
    backend: dict[str, str], tmp_path: Path
) -> None:
    extract = json.loads(DEMO.read_text())
    given = {o["her_id"]: o["orgnr"] for o in extract["organisations"]}
    assert all(given.values()) and len(set(given.values())) == len(given)
    result = run_import(backend["registry"], DEMO, tmp_path)
    assert result.returncode == 0, result.stderr
    app = RegistryApplication.from_url(backend["registry"])
    try:
        assert organisation_numbers(app, list(given)) == given
        assert {app.orgnr_holder(orgnr) for orgnr in given.values()} == set(given)
    finally:
        app.close()


def test_an_organisation_number_given_twice_in_a_file_is_named_and_nothing_is_imported(
    backend: dict[str, str], tmp_path: Path
) -> None:
    extract = json.loads(DEMO.read_text())
    extract["organisations"][2]["orgnr"] = extract["organisations"][1]["orgnr"]
    bad = tmp_path / "extract.json"
    bad.write_text(json.dumps(extract))
    result = run_import(backend["registry"], bad, tmp_path)
    assert result.returncode != 0
    assert "organisations[2].orgnr: 883016610 is given to organisations[1] too" in result.stderr
    app = RegistryApplication.from_url(backend["registry"])
    try:
        assert events_in(app) == 0
    finally:
        app.close()


def test_a_malformed_organisation_number_is_named(backend: dict[str, str], tmp_path: Path):
    extract = json.loads(DEMO.read_text())
    extract["organisations"][3]["orgnr"] = "899603088"  # wrong check digit
    bad = tmp_path / "extract.json"
    bad.write_text(json.dumps(extract))
    result = run_import(backend["registry"], bad, tmp_path)
    assert result.returncode != 0
    assert "organisations[3].orgnr: is not an organisation number" in result.stderr


def test_a_number_another_organisation_holds_is_refused_before_anything_is_written(
    backend: dict[str, str], tmp_path: Path
) -> None:
    assert run_import(backend["registry"], DEMO, tmp_path).returncode == 0
    app = RegistryApplication.from_url(backend["registry"])
    try:
        before = events_in(app)
        extract = {
            "organisations": [
                {"her_id": "4401", "kind": "MUNICIPALITY", "name": "Nyby kommune",
                 "parent_her_id": "", "orgnr": "974760673"},
                # Åsli kommune's number, which Åsli (4301) keeps
                {"her_id": "4402", "kind": "MUNICIPALITY", "name": "Elvdal kommune",
                 "parent_her_id": "", "orgnr": "899603087"},
            ]
        }  # fmt: skip
        clash = tmp_path / "clash.json"
        clash.write_text(json.dumps(extract))
        result = run_import(backend["registry"], clash, tmp_path)
        assert result.returncode != 0
        assert (
            "organisations[1].orgnr: 899603087 belongs to another organisation of the directory "
            "(HER-id 4301)" in result.stderr
        )
        assert events_in(app) == before
        assert app.orgnr_holder("974760673") is None
    finally:
        app.close()


def test_a_number_moves_when_the_file_gives_its_holder_another(
    backend: dict[str, str], tmp_path: Path
) -> None:
    """Enhetsregisteret's units are reorganised: Åsli's number goes to its new health service
    and Åsli gets a new one, in one extract (listed in either order)."""
    assert run_import(backend["registry"], DEMO, tmp_path).returncode == 0
    extract = {
        "organisations": [
            {"her_id": "4402", "kind": "MUNICIPALITY", "name": "Åsli helsetjeneste",
             "parent_her_id": "4301", "orgnr": "899603087"},
            {"her_id": "4301", "kind": "MUNICIPALITY", "name": "Åsli kommune",
             "parent_her_id": "", "orgnr": "974760673"},
        ]
    }  # fmt: skip
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps(extract))
    result = run_import(backend["registry"], moved, tmp_path)
    assert result.returncode == 0, result.stderr
    app = RegistryApplication.from_url(backend["registry"])
    try:
        assert organisation_numbers(app, ["4301", "4402"]) == {
            "4301": "974760673",
            "4402": "899603087",
        }
        assert app.orgnr_holder("899603087") == "4402"
        assert app.orgnr_holder("974760673") == "4301"
    finally:
        app.close()
