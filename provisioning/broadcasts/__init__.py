"""Broadcasts (трансляции): scheduled by a school into one of its chats (issue 21).

`cover` checks the cover image, `service` holds the rules of the form, `notices` says what
the bot posts, and `clock` posts it on time from the service's background.
"""
