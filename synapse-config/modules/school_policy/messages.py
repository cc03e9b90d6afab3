"""What a person reads when the school's rules refuse an action, in the region's language.

Clients show the homeserver's `error` text as it is, so each message says what the rule
is and, where there is one, what to do instead.
"""

from __future__ import annotations

from typing import Literal

Language = Literal["ru", "en"]

MESSAGES: dict[str, dict[Language, str]] = {
    "outsider": {
        "ru": "Ученик может общаться только с людьми своей школы: учителями, ребятами из школы "
        "и своими родителями.",
        "en": "A pupil can only talk with people of their own school: their teachers, "
        "schoolmates and their own parents.",
    },
    "other_class": {
        "ru": "В этой школе ученики переписываются только с одноклассниками, учителями "
        "и своими родителями.",
        "en": "In this school pupils only write to their classmates, teachers and their own "
        "parents.",
    },
    "other_child": {
        "ru": "Родитель может писать своему ребёнку, его учителям, администрации школы "
        "и родителям класса, но не чужим детям.",
        "en": "A parent can write to their own child, the child's teachers, the school's "
        "administration and the class's parents, but not to other children.",
    },
    "pupil_unconfirmed": {
        "ru": "Ученик ещё не подтверждён родителем или школой; до этого он может переписываться "
        "только со своими родителями.",
        "en": "This pupil is not confirmed by a parent or the school yet; until then they can "
        "only write to their own parents.",
    },
    "remote": {
        "ru": "Люди с других серверов не могут общаться с учениками и входить в комнаты, "
        "где есть ученики.",
        "en": "People of other servers cannot talk with pupils or enter rooms with pupils in them.",
    },
    "room_closed": {
        "ru": "Эта комната школы закрыта для людей с других серверов. Открыть её для другого "
        "региона может администрация школы.",
        "en": "This room of the school is closed to people of other servers. The school's "
        "administration can open it to another region.",
    },
    "not_of_school": {
        "ru": "Этот человек не из этой школы. В комнаты школы попадают только её ученики, "
        "родители и сотрудники; добавьте человека в школу через администрацию.",
        "en": "This person is not of this school. Only its pupils, parents and staff are in "
        "the school's rooms; ask the administration to add the person to the school.",
    },
    "not_for_pupils": {
        "ru": "Эта комната для учителей или родителей, ученики в ней не состоят.",
        "en": "This room is for teachers or parents; pupils are not members of it.",
    },
    "knock_outsider": {
        "ru": "Попросить вступить в класс или школу может только человек этой школы. "
        "Попросите у школы ссылку-приглашение.",
        "en": "Only people of this school can ask to join its classes and rooms. Ask the "
        "school for an invitation link.",
    },
    "knock_reason": {
        "ru": "Попросите вступить без текста: текст просьбы видят все участники, "
        "в том числе ученики. Отправьте запрос ещё раз с пустым полем причины.",
        "en": "Ask to join without a message: everyone in the room, pupils too, would read "
        "it. Send the request again with the reason left empty.",
    },
    "knock_stranger_invited": {
        "ru": "Этот человек не из этой школы, поэтому его запрос нельзя принять. "
        "Отклоните запрос; если он должен быть в школе, отправьте ему ссылку-приглашение.",
        "en": "This person is not of this school, so their request cannot be accepted. "
        "Decline it; if they belong to the school, send them an invitation link.",
    },
    "only_staff_create": {
        "ru": "Добавлять комнаты в пространство школы могут только её сотрудники.",
        "en": "Only the school's staff can add rooms to the school's space.",
    },
    "bot_only": {
        "ru": "Эти настройки комнат школы меняет только Parta. Обратитесь к администратору школы.",
        "en": "Only Parta changes these settings of the school's rooms. Ask the school's "
        "administration.",
    },
    "channel": {
        "ru": "В канале класса пишут только учителя класса и администрация школы.",
        "en": "Only the class's teachers and the school's administration post in the class "
        "channel.",
    },
    "announcements": {
        "ru": "Объявления школы публикует только администрация.",
        "en": "Only the administration posts school announcements.",
    },
    "materials": {
        "ru": "В материалах школы пишут только учителя и администрация.",
        "en": "Only the school's teachers and administration post the school's materials.",
    },
    "events": {
        "ru": "В событиях школы пишут только классные руководители и администрация.",
        "en": "Only class teachers and the administration post the school's events.",
    },
    "channel_poll_answer": {
        "ru": "В канале ответ на опрос содержит только выбранные варианты, без текста. "
        "Выберите вариант в самом опросе; написать учителю можно в личном чате.",
        "en": "In a channel a poll answer carries only the chosen options, no text. Choose "
        "an option in the poll itself; to write to the teacher, use a direct chat.",
    },
    "channel_reaction": {
        "ru": "Реакция в канале — это эмодзи или несколько символов (не больше 16) в одной "
        "строке. Написать учителю можно в личном чате.",
        "en": "A reaction in a channel is an emoji or a few characters (16 at most) on one "
        "line. To write to the teacher, use a direct chat.",
    },
    "channel_redaction_reason": {
        "ru": "В канале свою реакцию или ответ убирают без указания причины: её прочли бы все "
        "участники. Удалите ещё раз, оставив причину пустой.",
        "en": "In a channel your reaction or answer is taken back without a reason: everyone "
        "in the room would read it. Remove it again with the reason left empty.",
    },
    "no_directory": {
        "ru": "Комнаты не публикуются в общем каталоге сервера: в школьные чаты приглашают.",
        "en": "Rooms are not published in the server's directory: people are invited to "
        "school chats.",
    },
    "adults_other_school": {
        "ru": "В этом регионе можно писать только людям своей школы.",
        "en": "In this region you can only write to people of your own school.",
    },
    "policy_unavailable": {
        "ru": "Сервер сейчас не может проверить правила школы. Попробуйте позже; если это "
        "повторяется, сообщите администратору.",
        "en": "The server cannot check the school's rules right now. Try again later; if it "
        "keeps happening, tell the administrator.",
    },
    "sso_unknown": {
        "ru": "Вход через региональную учётную запись возможен только для тех, кого уже "
        "пригласила школа. Попросите в своей школе приглашение в Parta, затем войдите снова.",
        "en": "Signing in with the region's account works only for people their school has "
        "already invited. Ask your school for an invitation to Parta, then sign in again.",
    },
    "sso_unverified": {
        "ru": "Региональная учётная запись не подтвердила ваш телефон или почту. Подтвердите "
        "их в ней и войдите снова, или попросите приглашение в своей школе.",
        "en": "The region's account has not confirmed your phone number or e-mail. Confirm it "
        "there and sign in again, or ask your school for an invitation.",
    },
    "sso_unavailable": {
        "ru": "Сейчас не удаётся проверить, кто вы. Попробуйте войти через минуту.",
        "en": "Parta cannot check who you are right now. Try signing in again in a minute.",
    },
}


def message(reason: str, language: Language) -> str:
    texts = MESSAGES.get(reason, MESSAGES["policy_unavailable"])
    return texts[language]
