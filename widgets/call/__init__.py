"""The call widget: lessons, meetings and one-to-one calls, forwarded by our aiortc SFU."""
