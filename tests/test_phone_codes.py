"""The rules of SMS codes, on a migrated database with a clock the test moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.orm import Session

from provisioning.db.base import Base
from provisioning.db.phone_codes import PhoneCode
from provisioning.services import limits
from provisioning.services import phone_codes as codes
from provisioning.services.phone_codes import CodeRefused, DailyLimits, Purpose

KEY = codes.code_key("a-deploy-time-secret-for-tests")
NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
PHONE = "+79005550102"
REG = Purpose.REGISTRATION


DEFAULT_LIMITS = DailyLimits()


def issue(
    session: Session,
    at: datetime,
    *,
    phone: str = PHONE,
    origin: str = "192.0.2.1",
    limits_: DailyLimits = DEFAULT_LIMITS,
) -> codes.IssuedCode:
    issued = codes.issue(session, phone, REG, key=KEY, origin=origin, limits=limits_, now=at)
    session.commit()
    return issued


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def test_the_migration_matches_the_model(migrated_session: Session) -> None:
    context = MigrationContext.configure(migrated_session.connection())
    diff = [d for d in compare_metadata(context, Base.metadata) if "phone_codes" in str(d)]
    assert diff == []


def test_a_code_is_stored_only_as_a_hash_and_works_once(migrated_session: Session) -> None:
    issued = issue(migrated_session, NOW)
    assert len(issued.code) == 6 and issued.code.isdigit()
    row = migrated_session.get(PhoneCode, issued.id)
    assert row is not None and issued.code not in row.digest and len(row.digest) == 64
    codes.check(
        migrated_session,
        PHONE,
        REG,
        f" {issued.code[:3]} {issued.code[3:]} ",
        key=KEY,
        now=NOW + timedelta(seconds=30),
    )
    with pytest.raises(CodeRefused, match="used already"):
        codes.check(migrated_session, PHONE, REG, issued.code, key=KEY, now=NOW)
    with pytest.raises(CodeRefused, match="No code was sent"):
        codes.check(migrated_session, "+79005550103", REG, issued.code, key=KEY, now=NOW)
    with pytest.raises(CodeRefused, match="No code was sent"):  # another purpose
        codes.check(migrated_session, PHONE, Purpose.PASSWORD_RESET, issued.code, key=KEY)


def test_a_new_code_only_after_the_countdown_and_only_the_newest_counts(
    migrated_session: Session,
) -> None:
    first = issue(migrated_session, NOW)
    assert first.resend_at == NOW + timedelta(seconds=60)
    with pytest.raises(CodeRefused, match="in 45 s") as refused:
        issue(migrated_session, NOW + timedelta(seconds=15))
    assert refused.value.retry_after_s == 45
    assert (
        codes.seconds_until_resend(migrated_session, PHONE, REG, NOW + timedelta(seconds=59)) == 1
    )
    second = issue(migrated_session, NOW + timedelta(seconds=60))
    if first.code != second.code:
        with pytest.raises(CodeRefused, match="wrong"):
            codes.check(
                migrated_session, PHONE, REG, first.code, key=KEY, now=NOW + timedelta(seconds=61)
            )
    codes.check(migrated_session, PHONE, REG, second.code, key=KEY, now=NOW + timedelta(seconds=62))


def test_codes_expire_after_five_minutes(migrated_session: Session) -> None:
    issued = issue(migrated_session, NOW)
    with pytest.raises(CodeRefused, match="expired"):
        codes.check(
            migrated_session, PHONE, REG, issued.code, key=KEY, now=NOW + timedelta(minutes=5)
        )


def test_five_attempts_per_code(migrated_session: Session) -> None:
    issued = issue(migrated_session, NOW)
    for left in (4, 3, 2, 1):
        with pytest.raises(CodeRefused, match=f"tries left: {left}"):
            codes.check(migrated_session, PHONE, REG, wrong(issued.code), key=KEY, now=NOW)
        migrated_session.commit()
    with pytest.raises(CodeRefused, match="last try"):
        codes.check(migrated_session, PHONE, REG, wrong(issued.code), key=KEY, now=NOW)
    migrated_session.commit()
    with pytest.raises(CodeRefused, match="typed wrong 5 times"):  # even the right one now
        codes.check(migrated_session, PHONE, REG, issued.code, key=KEY, now=NOW)
    with pytest.raises(CodeRefused, match="6 digits"):  # not counted, not a code at all
        codes.check(migrated_session, PHONE, REG, "12a456", key=KEY, now=NOW)


def test_daily_limits_per_number_and_per_address(migrated_session: Session) -> None:
    small = DailyLimits(per_number=2, per_address=3)
    issue(migrated_session, NOW, limits_=small)
    issue(migrated_session, NOW + timedelta(minutes=1), limits_=small)
    with pytest.raises(CodeRefused, match="2 codes in the last 24 hours") as refused:
        issue(migrated_session, NOW + timedelta(minutes=2), limits_=small)
    assert refused.value.retry_after_s == int(timedelta(hours=23, minutes=58).total_seconds()) + 1
    issue(migrated_session, NOW + timedelta(minutes=2), phone="+79005550103", limits_=small)
    with pytest.raises(CodeRefused, match="from your network"):
        issue(migrated_session, NOW + timedelta(minutes=3), phone="+79005550104", limits_=small)
    issue(
        migrated_session,
        NOW + timedelta(minutes=3),
        phone="+79005550104",
        origin="192.0.2.9",
        limits_=small,
    )
    # A day later the number may have codes again.
    issue(migrated_session, NOW + timedelta(hours=24, minutes=1), limits_=small)
    assert migrated_session.scalar(select(PhoneCode.id).where(PhoneCode.phone == PHONE)) is not None


def test_mistyped_numbers_get_a_clear_message() -> None:
    assert limits.mobile_number("8 (900) 555-01-02") == PHONE
    assert limits.mobile_number("900 555 01 02") == PHONE
    with pytest.raises(limits.FieldRefused, match="11 digits"):
        limits.mobile_number("8 900 555-01-0")
    with pytest.raises(limits.FieldRefused, match="not a mobile number"):
        limits.mobile_number("+7 495 123-45-67")
    with pytest.raises(limits.FieldRefused, match="Enter your mobile number"):
        limits.mobile_number("  ")
