"""The documents widget: files in Matrix rooms, converted for preview, shown in calls."""
