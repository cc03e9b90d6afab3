"""What the REST API takes and gives: separate input and output models, checked at the edge."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from provisioning.api.deps import RowId
from provisioning.services.limits import (
    OptionalEmailAddress,
    OptionalPhoneNumber,
    OptionalRosterId,
    OptionalSubjectName,
    PersonName,
)
from provisioning.services.roster import parse_class
from provisioning.services.schools import parse_school_year


class SchoolCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=2, max_length=200)
    slug: str | None = Field(default=None, pattern=r"^[a-z0-9-]{2,40}$")
    academic_year: int | None = Field(default=None, ge=2000, le=2100)
    last_grade: int = Field(default=11, ge=1, le=12)


class ClassPublic(BaseModel):
    id: int
    label: str
    grade: int
    letter: str
    graduation_year: int
    archived: bool


class SchoolPublic(BaseModel):
    id: int
    name: str
    slug: str
    academic_year: int
    classes: list[ClassPublic]


class ClassCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(description="such as «5А»", max_length=16)

    @field_validator("label")
    @classmethod
    def _is_a_class(cls, value: str) -> str:
        if parse_class(value) is None:
            raise ValueError("give a class such as 5А")
        return value


class Promotion(BaseModel):
    """Start the next school year; naming it makes a repeated request harmless."""

    model_config = ConfigDict(extra="forbid")
    to_year: str = Field(description="the school year to start, such as «2027/2028»")

    @field_validator("to_year")
    @classmethod
    def _is_a_school_year(cls, value: str) -> str:
        if parse_school_year(value) is None:
            raise ValueError("give the school year to start, such as 2027/2028")
        return value

    @property
    def academic_year(self) -> int:
        """The calendar year the new school year begins in."""
        year = parse_school_year(self.to_year)
        assert year is not None  # checked by the validator
        return year


MemberRole = Literal["pupil", "teacher", "class_teacher", "parent", "school_admin"]


class PersonCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # The limits of `services.limits`, the same the roster import and the admin UI use.
    display_name: PersonName
    role: MemberRole
    class_label: str | None = Field(default=None, max_length=16)
    subject: OptionalSubjectName = None
    phone: OptionalPhoneNumber = None
    email: OptionalEmailAddress = None
    roster_id: OptionalRosterId = Field(
        default=None, description="the region roster's ID of the person, unique in the region"
    )
    children: list[RowId] = Field(default_factory=list, description="person IDs, for parents")


class PersonPublic(BaseModel):
    id: int
    display_name: str
    matrix_user_id: str | None
    roster_id: str | None = None
    roles: list[str]


class ParentLinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parent_id: RowId
    child_id: RowId


class MovePupil(BaseModel):
    model_config = ConfigDict(extra="forbid")
    class_label: str = Field(max_length=16)


class ImportResult(BaseModel):
    created: int
    moved: int
    unchanged: int
    classes_created: list[str]


class SyncResult(BaseModel):
    actions: int
    calls: int
    seconds: float


class RoomPublic(BaseModel):
    """One of the school's managed rooms, and whether the school opened it to other regions."""

    alias: str
    kind: str
    class_id: int | None
    room_id: str | None
    federated: bool


class RoomFederation(BaseModel):
    federated: bool


class PersonUpdate(BaseModel):
    """A person's name and contacts corrected: checked exactly as when they were added."""

    model_config = ConfigDict(extra="forbid")
    # The types of `services.limits`, as in `PersonCreate` and the roster import.
    display_name: PersonName
    phone: OptionalPhoneNumber = None
    email: OptionalEmailAddress = None
    # Left out, the roster ID stays as it is (forms that do not show it keep it); null
    # clears it.
    roster_id: OptionalRosterId = None


class SchoolUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, SchoolCreate.model_fields["name"]]


class ClassUpdate(BaseModel):
    """A class's new name: the same grade, another letter."""

    model_config = ConfigDict(extra="forbid")
    label: Annotated[str, ClassCreate.model_fields["label"]]

    @field_validator("label")
    @classmethod
    def _is_a_class(cls, value: str) -> str:
        if parse_class(value) is None:
            raise ValueError("give a class such as 5А")
        return value


class ClassTeacher(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person_id: RowId
