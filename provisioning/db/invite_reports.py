"""«Это не я»: a personal link whose holder said the name on it is not theirs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from provisioning.db.base import Base, utcnow

MAX_COMMENT_CHARS = 500


class InviteReport(Base):
    """One report per link (the unique invite is the rate limit: a holder cannot spam).

    The link is suspended when the report is made; the school's administration then
    re-issues a link for the right person or dismisses the report.
    """

    __tablename__ = "invite_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    invite_id: Mapped[int] = mapped_column(
        ForeignKey("invite_links.id", ondelete="CASCADE"), unique=True
    )
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    comment: Mapped[str] = mapped_column(String(MAX_COMMENT_CHARS), default="")
    origin: Mapped[str | None] = mapped_column(String(64))  # the reporter's address
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolution: Mapped[str | None] = mapped_column(String(16))  # "reissued" or "dismissed"
    new_invite_id: Mapped[int | None] = mapped_column(
        ForeignKey("invite_links.id", ondelete="SET NULL")
    )
