"""Names beside ids: the person, the course and the section of a Change, as Canvas's answers
of this run showed them. People cost no request (the enrollment rows carry the user); the
course and its sections are asked once per course per run, a dry run or a real one, so the
plan and the lines of the run that follows it read the same."""

from __future__ import annotations

import contextlib
import dataclasses

import canvas_common as cc

from .changes import Change


def named(canvas: cc.Canvas, change: Change) -> Change:
    """change with the names this run's answers know: the user's (an enrollment row's user,
    GET /api/v1/users), the course's code or name (GET /api/v1/courses/:id) and the
    section's (GET /api/v1/courses/:id/sections); a name no answer showed stays None."""
    section = canvas.known_section(change.course_id, change.section_id) if change.section_id else None
    course = canvas.known_course(change.course_id)
    user = change.user_name or canvas.people.get(change.sis_user_id) \
        or canvas.people.get(change.logged_sis_user_id or "")  # an undo's, logged before an SIS ID change
    place = change.course_name or course_name(course)
    section_name = section.get("name") if section and section.get("name") else change.section_name
    if (user, place, section_name) == (change.user_name, change.course_name, change.section_name):
        return change
    return dataclasses.replace(change, user_name=user, course_name=place, section_name=section_name)


def course_name(course: dict | None) -> str | None:
    """A course as admins call it: its course code (PHYS2), else its name."""
    if not course:
        return None
    return course.get("course_code") or course.get("name") or None


def ask_names(canvas: cc.Canvas, course: str) -> None:
    """The course (GET /api/v1/courses/:id) and its sections (GET /api/v1/courses/:id/sections),
    once per course per run (Canvas caches them), so the lines name them. A token whose scopes
    or rights leave them out gets the ids alone, never an error."""
    for lookup in (canvas.course, canvas.sections):
        # the plan's own lookups say what is wrong with the course
        with contextlib.suppress(cc.CanvasForbidden, cc.CanvasScopeMissing, cc.CanvasNotFound):
            lookup(course)
