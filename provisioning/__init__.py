"""Parta's source of truth: regions, schools, classes, people and roles."""
