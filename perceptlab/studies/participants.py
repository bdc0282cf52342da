"""What a study owes its participants and their platforms: completion codes, the MTurk
ExternalQuestion submission, Prolific's approval list, and deleting one participant's data
on request (GDPR Art. 17).

Every session has its own random ``completion_secret`` next to the study's static
``completion_code``: a code shared on a forum is the static one, so a researcher checks
the per-session code a submission carries against :func:`approval_rows` before approving.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.db import transaction

from perceptlab.studies.models import Judgment, Session, Study
from perceptlab.studies.sessions import release_all

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

#: The only places an MTurk ExternalQuestion may post to (production and the sandbox);
#: ``turkSubmitTo`` arrives in the query string, so anything else would be an open redirect.
MTURK_HOSTS = ("https://www.mturk.com", "https://workersandbox.mturk.com")
MTURK_SUBMIT_PATH = "/mturk/externalSubmit"
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"

APPROVAL_COLUMNS = ("participant_id", "status", "completion_code", "screened_reason")
COMPLETED, SCREENED_OUT, RETURNED = "completed", "screened_out", "returned"
# A spreadsheet runs a cell starting with one of these as a formula; participant ids
# come from the query string (OWASP, "CSV Injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ParticipantError(LookupError):
    """A study or a participant named on the command line does not exist."""


class UnknownStudy(ParticipantError):
    def __init__(self, name: str, valid: list[str]) -> None:
        self.name, self.valid = name, valid
        super().__init__(f"no study {name!r}; studies: {', '.join(valid) or '(none)'}")


class UnknownParticipant(ParticipantError):
    def __init__(self, study: Study, participant_id: str) -> None:
        self.study, self.participant_id = study, participant_id
        super().__init__(
            f"study {study.name!r} has no session of participant {participant_id!r} "
            "(a Prolific or MTurk participant id, or a session's code)"
        )


# -- completion --------------------------------------------------------------------------


def completion_link(*, session: Session) -> str:
    """The study's completion URL with the session's own code as ``cc=``, unless the URL
    already carries a ``cc`` (Prolific's ``?cc=STATIC`` is what Prolific checks); ""
    when the study has no completion URL."""
    url = session.study.completion_url
    if not url:
        return ""
    parts = urlsplit(url)
    if any(key == "cc" for key, _ in parse_qsl(parts.query, keep_blank_values=True)):
        return url
    extra = urlencode({"cc": session.completion_secret})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


@dataclass(frozen=True)
class MturkSubmit:
    """What the completed page of an MTurk session posts back to MTurk (an
    ExternalQuestion HIT must post to ``turkSubmitTo/mturk/externalSubmit``).

    ``action`` is "" when the HIT's ``turkSubmitTo`` is not MTurk's own, or the assignment
    is unknown: nothing is posted then and the rater is asked to contact the researcher.
    """

    action: str
    fields: dict[str, str]


def mturk_submit(*, session: Session) -> MturkSubmit | None:
    """The MTurk submission of a completed MTurk session; None for other platforms."""
    if session.platform != Session.Platform.MTURK:
        return None
    assignment = session.external.get("assignmentId", "")
    host = session.external.get("turkSubmitTo", "").rstrip("/")
    fields = {
        "assignmentId": assignment,
        "completion_code": session.study.completion_code,
        "session_code": session.completion_secret,
    }
    if host not in MTURK_HOSTS or not assignment or assignment == MTURK_PREVIEW:
        return MturkSubmit(action="", fields=fields)
    return MturkSubmit(action=host + MTURK_SUBMIT_PATH, fields=fields)


# -- Prolific approvals ------------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalRow:
    """One Prolific participant: approve ``completed`` ones whose submitted code matches."""

    participant_id: str
    status: str
    completion_code: str
    screened_reason: str


def approval_status(session: Session) -> str:
    """completed, screened_out, or returned (declined, or started and never finished)."""
    if session.state == Session.State.COMPLETED:
        return COMPLETED
    if session.state == Session.State.SCREENED_OUT:
        return SCREENED_OUT
    return RETURNED


def approval_rows(*, study: Study) -> list[ApprovalRow]:
    """One row per Prolific session of the study, oldest first (previews never)."""
    prolific = study.sessions.filter(platform=Session.Platform.PROLIFIC).order_by("created", "pk")
    return [_approval_row(session, study) for session in prolific]


def _approval_row(session: Session, study: Study) -> ApprovalRow:
    status = approval_status(session)
    code = reason = ""
    if status == COMPLETED:
        code = session.completion_secret
    elif status == SCREENED_OUT:
        code, reason = study.screenout_code, session.screened_reason
    return ApprovalRow(session.participant_id, status, code, reason)


def write_approvals(rows: Iterable[ApprovalRow], out: SupportsWrite[str]) -> int:
    """Write the rows as CSV (header :data:`APPROVAL_COLUMNS`); returns the row count."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(APPROVAL_COLUMNS)
    count = 0
    for row in rows:
        values = (row.participant_id, row.status, row.completion_code, row.screened_reason)
        writer.writerow([_cell(value) for value in values])
        count += 1
    return count


def _cell(value: str) -> str:
    return f"'{value}" if value.startswith(FORMULA_START) else value


# -- deleting a participant's data -------------------------------------------------------


def find_study(*, name: str) -> Study:
    study = Study.objects.filter(name=name).first()
    if study is None:
        raise UnknownStudy(name, sorted(Study.objects.values_list("name", flat=True)))
    return study


def find_participant(*, study: Study, participant_id: str) -> Session:
    """The study's session of this platform participant id, or with this session code
    (a direct visitor has no participant id)."""
    sessions = study.sessions.all()
    found = sessions.filter(participant_id=participant_id).first() if participant_id else None
    if found is None and (code := _as_uuid(participant_id)) is not None:
        found = sessions.filter(code=code).first()
    if found is None:
        raise UnknownParticipant(study, participant_id)
    return found


def _as_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class Deletion:
    """What deleting a session removes (or removed)."""

    session: str
    trials: int
    judgments: int
    slots: int

    def __str__(self) -> str:
        return (
            f"session {self.session}: {self.trials} trial(s), {self.judgments} judgment(s), "
            f"{self.slots} slot(s) given back"
        )


def deletion_of(*, session: Session) -> Deletion:
    """What :func:`delete_participant` would remove, without removing anything."""
    return Deletion(
        session=str(session),
        trials=session.trials.count(),
        judgments=Judgment.objects.filter(trial__session=session).count(),
        slots=session.trials.filter(holds_slot=True).count(),
    )


def delete_participant(*, session: Session) -> Deletion:
    """Delete the session with its trials and judgments, after giving back every slot it
    holds, in one transaction: each item's ``assigned`` keeps equalling its trials holding
    a slot, and the freed slots go to the next raters."""
    planned = deletion_of(session=session)
    with transaction.atomic():
        release_all(session=session)
        Judgment.objects.filter(trial__session=session).delete()
        # A trial bound meanwhile (the rater's page still open) would still hold a slot;
        # with the judgments gone, every trial holding one is given back here.
        release_all(session=session)
        # Trials and judgments point at items and stimuli (PROTECT), which stay; the
        # session's delete cascades to its trials only.
        Session.objects.filter(pk=session.pk).delete()
    return planned
