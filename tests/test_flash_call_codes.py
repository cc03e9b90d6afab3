"""Codes by flash call: the last 4 digits of the calling number, under the rules of SMS
codes (countdown, expiry, attempts, daily limits, only a keyed hash kept), on a migrated
database (SQLite and PostgreSQL) with a clock the test moves."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from provisioning.db.phone_codes import PhoneCode
from provisioning.services import phone_codes as codes
from provisioning.services.phone_codes import Channel, CodeRefused, DailyLimits
from tests.test_phone_codes import DEFAULT_LIMITS, KEY, NOW, PHONE, REG

CALL = Channel.FLASH_CALL


def call(
    session: Session, at: timedelta, *, limits: DailyLimits = DEFAULT_LIMITS
) -> codes.IssuedCode:
    issued = codes.issue(
        session, PHONE, REG, key=KEY, origin="192.0.2.1", limits=limits, now=NOW + at,
        channel=CALL,
    )  # fmt: skip
    session.commit()
    return issued


def other_four(code: str) -> str:
    return f"{(int(code) + 1) % 10**4:04d}"


def test_a_flash_call_code_is_four_digits_kept_only_as_a_hash(migrated_session: Session) -> None:
    issued = call(migrated_session, timedelta())
    assert issued.channel is CALL and len(issued.code) == 4 and issued.code.isdigit()
    row = migrated_session.get(PhoneCode, issued.id)
    assert row is not None and row.channel == "flash_call"
    assert issued.code not in row.digest and len(row.digest) == 64
    assert codes.live_channel(migrated_session, PHONE, REG, NOW) is CALL
    with pytest.raises(CodeRefused, match="last 4 digits of the number that called"):
        codes.check(migrated_session, PHONE, REG, "123456", key=KEY, now=NOW)  # an SMS's length
    codes.check(migrated_session, PHONE, REG, f"{issued.code[:2]}-{issued.code[2:]}", key=KEY,
                now=NOW + timedelta(seconds=20))  # fmt: skip
    with pytest.raises(CodeRefused, match="used already"):
        codes.check(migrated_session, PHONE, REG, issued.code, key=KEY, now=NOW)
    assert codes.live_channel(migrated_session, PHONE, REG, NOW) is None


def test_flash_calls_keep_the_countdown_attempts_and_expiry(migrated_session: Session) -> None:
    issued = call(migrated_session, timedelta())
    with pytest.raises(CodeRefused, match="in 50 s"):
        call(migrated_session, timedelta(seconds=10))
    for left in (4, 3, 2, 1):
        with pytest.raises(CodeRefused, match=f"number that called.*tries left: {left}"):
            codes.check(migrated_session, PHONE, REG, other_four(issued.code), key=KEY, now=NOW)
        migrated_session.commit()
    with pytest.raises(CodeRefused, match="last try"):
        codes.check(migrated_session, PHONE, REG, other_four(issued.code), key=KEY, now=NOW)
    migrated_session.commit()
    with pytest.raises(CodeRefused, match="typed wrong 5 times"):
        codes.check(migrated_session, PHONE, REG, issued.code, key=KEY, now=NOW)
    again = call(migrated_session, timedelta(seconds=61))
    with pytest.raises(CodeRefused, match="expired"):
        codes.check(migrated_session, PHONE, REG, again.code, key=KEY,
                    now=NOW + timedelta(seconds=61, minutes=5))  # fmt: skip


def test_an_sms_after_the_countdown_replaces_the_call(migrated_session: Session) -> None:
    called = call(migrated_session, timedelta())
    sms = codes.issue(migrated_session, PHONE, REG, key=KEY, origin="192.0.2.1",
                      limits=DailyLimits(), now=NOW + timedelta(seconds=60))  # fmt: skip
    migrated_session.commit()
    assert len(sms.code) == 6 and sms.channel is Channel.SMS
    assert codes.live_channel(migrated_session, PHONE, REG, NOW + timedelta(seconds=61)) is (
        Channel.SMS
    )
    with pytest.raises(CodeRefused, match="6 digits"):  # the call's digits count no more
        codes.check(migrated_session, PHONE, REG, called.code, key=KEY,
                    now=NOW + timedelta(seconds=61))  # fmt: skip
    codes.check(migrated_session, PHONE, REG, sms.code, key=KEY, now=NOW + timedelta(seconds=62))


def test_calls_and_texts_share_the_daily_limit(migrated_session: Session) -> None:
    small = DailyLimits(per_number=2, per_address=20)
    call(migrated_session, timedelta(), limits=small)
    codes.issue(migrated_session, PHONE, REG, key=KEY, origin="192.0.2.1", limits=small,
                now=NOW + timedelta(minutes=1))  # fmt: skip
    migrated_session.commit()
    with pytest.raises(CodeRefused, match="2 codes in the last 24 hours"):
        call(migrated_session, timedelta(minutes=2), limits=small)
