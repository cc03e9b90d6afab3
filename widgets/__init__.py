"""Parta's widgets: the call widget with its SFU, and the document widget."""
