"""A school's polls: the list (of the school, or of one class), a new poll, one poll's
results with its CSV, and ending it. The rules are in `services.polls`; here is HTTP."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from matrix.errors import Forbidden, MatrixError
from provisioning.api.deps import MatrixDep, PathId, SessionDep, SettingsDep
from provisioning.db.models import School
from provisioning.db.polls import Poll
from provisioning.i18n import N_
from provisioning.services import poll_sending, polls
from provisioning.services.access import Access
from provisioning.spreadsheet import csv_attachment, csv_document
from provisioning.web.deps import Viewer, WebError
from provisioning.web.pages.schools import class_for, school_for
from provisioning.web.render import render, translate

router = APIRouter()


def _poll_for(session: Session, viewer: Access, school: School, poll_id: int) -> Poll:
    poll = session.get(Poll, poll_id)
    if poll is None or poll.school_id != school.id:
        raise WebError(404, N_("There is no such poll in this school."))
    if not polls.may_view(viewer, poll):
        raise WebError(
            403,
            N_(
                "Only the poll's author, the class's teachers and the school's "
                "administration see this poll."
            ),
        )
    return poll


def _list_page(
    request: Request,
    session: Session,
    viewer: Access,
    school: School,
    *,
    class_id: int | None,
    form: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    school_class = class_for(session, school, class_id) if class_id is not None else None
    rows = polls.polls_of_school(session, viewer, school, class_id=class_id)
    targets = polls.rooms_to_poll(session, viewer, school)
    if school_class is not None:
        targets = [
            t
            for t in targets
            if t.school_class is not None and t.school_class.id == school_class.id
        ]
    return render(
        request, "polls.html", status=status, school=school, school_class=school_class,
        rows=rows, targets=targets, form=form or {}, error=error,
        max_question=poll_sending.MAX_QUESTION, max_answer=poll_sending.MAX_ANSWER,
    )  # fmt: skip


@router.get("/schools/{school_id}/polls")
def polls_page(
    request: Request,
    school_id: PathId,
    viewer: Viewer,
    session: SessionDep,
    class_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    school = school_for(session, viewer, school_id, manage=False)
    return _list_page(request, session, viewer, school, class_id=class_id)


def _draft_problem(exc: ValidationError) -> tuple[str, dict[str, object]]:
    """The form's first problem as a message that says what to do (N_ marked), with its
    parameters."""
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else ""
    if field == "question":
        return N_("Write the question, up to %(limit)s characters."), {
            "limit": poll_sending.MAX_QUESTION
        }
    if field == "answers":
        return N_("Give from 2 to 20 answers, one a line, each up to %(limit)s characters."), {
            "limit": poll_sending.MAX_ANSWER
        }
    if "twice" in str(error.get("msg", "")):
        return N_("Two answers are the same: make each answer different."), {}
    return N_("Say how many answers one person may choose: from 1 to the number of answers."), {}


@router.post("/schools/{school_id}/polls")
async def create_poll(
    request: Request,
    school_id: PathId,
    viewer: Viewer,
    session: SessionDep,
    matrix: MatrixDep,
    room: Annotated[str, Form(max_length=255)] = "",
    question: Annotated[str, Form(max_length=2000)] = "",
    answers: Annotated[str, Form(max_length=10_000)] = "",
    kind: Annotated[str, Form(pattern="^(disclosed|undisclosed)$")] = "disclosed",
    max_selections: Annotated[int, Form(ge=1, le=100)] = 1,
    class_id: Annotated[int | None, Form(ge=1, le=2**31 - 1)] = None,
) -> Response:
    """Start a poll in a room the viewer may poll, sent from their own account."""
    school = school_for(session, viewer, school_id, manage=False)
    form = {"room": room, "question": question, "answers": answers, "kind": kind,
            "max_selections": str(max_selections)}  # fmt: skip
    target = polls.room_to_poll(session, viewer, school, room)
    if target is None:
        raise WebError(
            403,
            N_(
                "You may start polls only in the channels and parents chats of "
                "your classes; the school's administration also in the "
                "announcements."
            ),
        )

    def again(message: str, status: int, **params: object) -> Response:
        error = translate(request, message, **params)
        return _list_page(
            request,
            session,
            viewer,
            school,
            class_id=class_id,
            form=form,
            error=error,
            status=status,
        )

    try:
        draft = poll_sending.PollDraft.model_validate(
            {"question": question, "answers": answers,  # the model splits the lines
             "disclosed": kind == "disclosed", "max_selections": max_selections}
        )  # fmt: skip
    except ValidationError as exc:
        message, params = _draft_problem(exc)
        return again(message, 400, **params)
    try:
        poll = await poll_sending.start_poll(matrix, session, viewer, target, draft)
    except Forbidden:
        session.rollback()
        return again(
            N_(
                "The homeserver did not let you post in this room: Parta places "
                "people in their rooms a minute after a change. Try again in a "
                "minute."
            ),
            409,
        )
    except MatrixError as exc:
        session.rollback()
        return again(
            N_("The homeserver did not take the poll (%(problem)s). Try again later."),
            502,
            problem=exc.errcode,
        )
    return RedirectResponse(f"/schools/{school.id}/polls/{poll.id}", status_code=303)


@router.get("/schools/{school_id}/polls/{poll_id}")
def poll_page(
    request: Request, school_id: PathId, poll_id: PathId, viewer: Viewer, session: SessionDep
) -> Response:
    school = school_for(session, viewer, school_id, manage=False)
    poll = _poll_for(session, viewer, school, poll_id)
    row = polls.poll_row(session, poll)
    results = row.results
    names = polls.names_of(
        session, [poll.creator, *results.choices, *([results.ended_by] if results.ended_by else [])]
    )
    return render(
        request, "poll.html", school=school, row=row, poll=poll, results=results, names=names,
        show_counts=polls.shows_counts(poll, results), show_who=polls.shows_who(poll, results),
        may_end=polls.may_end(viewer, poll) and not results.ended,
    )  # fmt: skip


@router.get("/schools/{school_id}/polls/{poll_id}/results.csv")
def poll_csv(
    request: Request, school_id: PathId, poll_id: PathId, viewer: Viewer, session: SessionDep
) -> Response:
    school = school_for(session, viewer, school_id, manage=False)
    poll = _poll_for(session, viewer, school, poll_id)
    results = polls.results_of(session, poll)
    if not polls.shows_counts(poll, results):
        raise WebError(
            409,
            N_(
                "This poll's results are hidden until it ends: end it first, or "
                "wait for its author to."
            ),
        )
    labels = {
        "question": translate(request, N_("Question")),
        "answer": translate(request, N_("Answer")),
        "votes": translate(request, N_("Votes")),
        "person": translate(request, N_("Person")),
        "matrix_id": translate(request, N_("Matrix ID")),
        "choice": translate(request, N_("Chose")),
    }
    names = polls.names_of(session, results.choices)
    document = csv_document(polls.csv_rows(poll, results, names, labels))
    return csv_attachment(document, f"poll-{poll.id}.csv")


@router.post("/schools/{school_id}/polls/{poll_id}/end")
async def end_poll(
    request: Request,
    school_id: PathId,
    poll_id: PathId,
    viewer: Viewer,
    session: SessionDep,
    matrix: MatrixDep,
    settings: SettingsDep,
) -> Response:
    """End the poll in its room: by its author, or by the bot for the administration."""
    school = school_for(session, viewer, school_id, manage=False)
    poll = _poll_for(session, viewer, school, poll_id)
    if not polls.may_end(viewer, poll):
        raise WebError(
            403, N_("Only the poll's author and the school's administration end a poll.")
        )
    if polls.results_of(session, poll).ended:
        return RedirectResponse(f"/schools/{school.id}/polls/{poll.id}", status_code=303)
    try:
        await poll_sending.end_poll(matrix, session, viewer, poll, bot_user_id=settings.bot_user_id)
    except MatrixError as exc:
        session.rollback()
        raise WebError(
            502,
            N_("The homeserver did not take the end of the poll (%(problem)s). Try again later."),
            problem=exc.errcode,
        ) from exc
    return RedirectResponse(f"/schools/{school.id}/polls/{poll.id}", status_code=303)
