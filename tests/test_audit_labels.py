"""Every audit action the code base records, and every automatic actor, has words in both
languages. The codes are found in the sources themselves, so a code added anywhere later
fails here until `provisioning/web/audit_labels.py` names it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioning.audit import AutomaticActor
from provisioning.i18n import LOCALES, translations
from provisioning.web.audit_labels import ACTION_LABELS, ACTOR_LABELS, action_label, actor_label

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("parta", "foundation", "matrix", "provisioning", "widgets", "synapse-config/modules")
RECORDER_MODULE = "provisioning/audit.py"
RECORDERS = {"record_audit", "_audit"}  # record_audit(session, actor, action, subject, ...)


def _automatic(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr in AutomaticActor.__members__


def _plain_str(argument: ast.arg) -> bool:
    """`actor: str = "system"`, as services declare who acts (not a page's filter)."""
    return isinstance(argument.annotation, ast.Name) and argument.annotation.id == "str"


def _literals(node: ast.expr, where: str) -> Iterator[str]:
    """The strings an expression can be: a literal, or either branch of `a if c else b`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.IfExp):
        yield from _literals(node.body, where)
        yield from _literals(node.orelse, where)
    elif _automatic(node):
        yield AutomaticActor[node.attr].value  # type: ignore[attr-defined]
    elif isinstance(node, ast.BoolOp):
        for value in node.values:
            if isinstance(value, ast.Constant | ast.IfExp) or _automatic(value):
                yield from _literals(value, where)  # `user_id or "system"`
    else:
        raise AssertionError(
            f"{where}: write the audit action as a literal code, not {ast.unparse(node)}"
        )


def _callee(call: ast.Call) -> str:
    func = call.func
    return (
        func.id
        if isinstance(func, ast.Name)
        else func.attr
        if isinstance(func, ast.Attribute)
        else ""
    )


def _trees() -> Iterator[tuple[str, ast.AST]]:
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "migrations" in path.parts:  # past schemas, not events recorded today
                continue
            where = str(path.relative_to(ROOT))
            yield where, ast.parse(path.read_text(encoding="utf-8"), filename=where)


def recorded_actions() -> dict[str, str]:
    """Every action code recorded in the sources, with the first place recording it."""
    found: dict[str, str] = {}
    for where, tree in _trees():
        if where == RECORDER_MODULE:  # it passes its caller's action on
            continue
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            name = _callee(call)
            place = f"{where}:{call.lineno}"
            action: ast.expr | None = None
            if name in RECORDERS:
                action = call.args[2] if len(call.args) > 2 else None
            if name in RECORDERS | {"AuditEvent"}:
                action = next((k.value for k in call.keywords if k.arg == "action"), action)
                assert action is not None, f"{place}: an audit event without an action"
                for code in _literals(action, place):
                    found.setdefault(code, place)
    return found


def automatic_actors() -> dict[str, str]:
    """Every actor written as a literal (not a person's Matrix ID), where it is written."""
    found: dict[str, str] = {}
    for where, tree in _trees():
        for node in ast.walk(tree):
            values: list[ast.expr] = []
            if isinstance(node, ast.Call):
                values += [k.value for k in node.keywords if k.arg == "actor"]
                if _callee(node) in RECORDERS and len(node.args) > 1:
                    values.append(node.args[1])
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                arguments = node.args.args + node.args.kwonlyargs
                defaults = [None] * (len(node.args.args) - len(node.args.defaults))
                defaults += node.args.defaults + node.args.kw_defaults  # type: ignore[operator]
                values += [d for a, d in zip(arguments, defaults, strict=True)
                           if a.arg == "actor" and d is not None and _plain_str(a)]  # fmt: skip
            for value in values:
                if isinstance(value, ast.Constant | ast.IfExp | ast.BoolOp) or _automatic(value):
                    for actor in _literals(value, f"{where}:{value.lineno}"):
                        found.setdefault(actor, f"{where}:{value.lineno}")
    return found


def test_the_sources_record_the_actions_we_know() -> None:
    found = recorded_actions()
    assert {"class.created", "region.created", "teacher.applied", "room.call_removed"} <= set(found)


def test_every_recorded_action_has_words() -> None:
    missing = {code: place for code, place in recorded_actions().items()
               if code not in ACTION_LABELS}  # fmt: skip
    assert not missing, f"add these audit actions to provisioning/web/audit_labels.py: {missing}"


def test_every_automatic_actor_has_words() -> None:
    found = automatic_actors()
    assert {"system", "cli", "demo", "registration-form"} <= set(found)
    missing = {actor: place for actor, place in found.items() if actor not in ACTOR_LABELS}
    assert not missing, f"name these actors in provisioning/web/audit_labels.py: {missing}"
    assert set(ACTOR_LABELS) == {actor.value for actor in AutomaticActor}


@pytest.mark.parametrize("locale", LOCALES)
def test_the_words_are_translated_and_a_person_keeps_their_id(locale: str) -> None:
    gettext = translations(locale).gettext
    for label in [*ACTION_LABELS.values(), *ACTOR_LABELS.values()]:
        assert gettext(label) != ("" if locale == "en" else label), label
    words = "Создан класс" if locale == "ru" else "Class created"
    assert action_label("class.created", gettext) == words
    assert action_label("some.future_code", gettext) == "some.future_code"
    assert actor_label("system", gettext) == (
        "Парта, автоматически" if locale == "ru" else "Parta, automatically"
    )
    assert actor_label("@ivan:school.example", gettext) is None
