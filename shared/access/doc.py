"""Print the access table as Markdown: `python -m shared.access.doc > docs/access.md`
(`make docs`). The unit tests fail when docs/access.md differs from what this prints, so the
document always says what the code does."""

from __future__ import annotations

from shared.access.model import RELATIONSHIPS, Basis, access_rules, emergency_duration
from shared.access.policy import Rule
from shared.access.table import RULES

INTRO = """\
# Who may call what (need to know)

Generated from `shared/access/table.py` and `shared/rules.toml` by `make docs`; do not edit.

Every call of every service passes one access policy (`shared/access/policy.py`) in the one
gRPC interceptor, and every call — allowed or refused, OK or not — is put on the audit log
(`shared/audit/log.py`) before its answer leaves. Default deny: a call without a rule here is
refused. A caller is refused with `PERMISSION_DENIED` and the same message whether or not the
patient, referral, stay or list exists.

A call is allowed when
1. the caller's kind is one the call is for (the token's `org_kind`);
2. *person*: a care organisation's token names the health professional (HPR-number); reads by
   a system role of `rules.toml` (`{system_roles}`) are allowed without one, writes never;
3. *roles*: the token has the role the call needs;
4. *blockable*: the patient has not blocked (sperret) the caller's organisation or the caller
   (HPR) — a block holds against emergency access too;
5. one of the *bases* holds now, in the order listed (the first found is recorded).

## The bases and how long they hold
"""

OTHER_GROUNDS = {
    Basis.ADMITTING_HOSPITAL: "any hospital admitting a patient who has come to it",
    Basis.SELF: "a CITIZEN token whose `pid` is the patient's own identifier",
    Basis.EMERGENCY: (
        "akuttilgang: the caller (with HPR) requested emergency access to the patient within the "
        "last {hours} hours (AccessService/RequestEmergencyAccess, its own audit row)"
    ),
    Basis.REGISTER_KEEPER: "a REGISTRY caller (the integration adapter bringing the registers in)",
    Basis.ORGANISATION_DIRECTORY: "any authenticated caller: the directory holds no personal data",
    Basis.SUPERVISOR: "a care organisation's supervisor (token role SUPERVISOR), its own org only",
    Basis.OWN_ORGANISATION: (
        "a municipality's own worklist (each patient listed on its own basis); a vendor's own "
        "event subscription (the organisation the subscription names as its vendor)"
    ),
    Basis.OPERATOR: (
        "one of carepath's operators (token role OPERATOR, an organisation of kind REGISTRY "
        "named in OPERATOR_HER_IDS: carepath's own operating organisation) managing vendor "
        "subscriptions; the role in any other organisation's token counts for nothing"
    ),
}

DECISIONS = """\
## Decisions made without a source

- A hospital may admit any patient (`ADMITTING_HOSPITAL`): people come to the emergency room
  without a referral. The admission then makes the hospital a party of its stay.
- Blocks refuse reads and the medication-list commands (whose reply shows the shared list), not
  a hospital's or municipality's own commands on its stay or referral: the patient blocks the
  sharing, not the care the organisation is giving.
- Relationships recorded by one service reach the others' policy through the pathway projector
  (typically well under a second). A referral's, stay's or discharge's own parties count at once.
- A relationship's clock is clinical time (`occurred_at`), like the rest of the pathway.
- Calls without a valid token are answered `UNAUTHENTICATED` and not put on the audit log (they
  name no one); everything else is.
- Vendor subscriptions are managed by carepath's operators only: a REGISTRY caller (carepath's
  own operating organisation, as the register adapter is, named in `OPERATOR_HER_IDS`) whose
  token has the role OPERATOR. Care organisations and vendors cannot create or change one, not
  even with a token wrongly carrying the role; a subscription's deliveries are then decided
  per patient by the served organisations' relationships (services/streams). A subscription's
  event stream is its vendor organisation's alone: the streams service resolves the named
  subscription to its vendor (target "own subscription"), and anyone else is refused alike
  whether or not the subscription exists.
- The stay window (30 days) and the emergency access duration (4 hours) are documented defaults
  (see the sources above).
"""


def _cell(values: object) -> str:
    return ", ".join(str(v) for v in values) if values else "—"  # type: ignore[attr-defined]


def _row(rule: Rule) -> str:
    flags = [
        "person" if rule.person else "",
        "blockable" if rule.blockable else "",
        f"role {_cell(sorted(rule.roles))}" if rule.roles else "",
        "purpose required" if rule.purpose_required else "",
    ]
    return (
        f"| `{rule.method}` | {rule.action.value} | {_cell(sorted(k.value for k in rule.callers))} "
        f"| {_cell(b.value for b in rule.bases)} | {rule.target.describe()} "
        f"| {', '.join(f for f in flags if f) or '—'} | {rule.purpose.value} | {rule.summary} |"
    )


def render() -> str:
    settings = access_rules()
    lines = [INTRO.format(system_roles=", ".join(settings["system_roles"]))]
    lines.append("| basis | means | counts after its end | source |")
    lines.append("| --- | --- | --- | --- |")
    for basis in Basis:
        if basis in RELATIONSHIPS:
            entry = settings["relationships"][basis.value]
            days = int(entry["days_after_end"])
            lines.append(
                f"| `{basis.value}` | {entry['means']} | {days} days | {entry['source']} |"
            )
    lines.append("")
    lines.append("Grounds the policy checks itself:")
    lines.append("")
    hours = int(emergency_duration().total_seconds() // 3600)
    for basis, text in OTHER_GROUNDS.items():
        lines.append(f"- `{basis.value}`: {text.format(hours=hours)}")
    lines.append(f"\nEmergency access source: {settings['emergency']['source']}.\n")
    lines.append("## The calls")
    service = ""
    for rule in RULES.values():
        if rule.service != service:
            service = rule.service
            lines.append(f"\n### {service}\n")
            lines.append(
                "| call | action | callers | bases (in order) | about | needs | "
                "default purpose | who |"
            )
            lines.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
        lines.append(_row(rule))
    lines.append("")
    lines.append(DECISIONS)
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
