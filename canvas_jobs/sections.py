"""Sections given by name (--section "Lab group", a CSV's section column): turned into
Canvas's id before any lookup or write, from the course's sections (one request per
course per run, GET /api/v1/courses/:course_id/sections, app/controllers/sections_controller.rb)."""

from __future__ import annotations

import dataclasses
from typing import Any

import canvas_common as cc
import canvas_hints
import canvas_ids


def resolve(canvas: cc.Canvas, course: str, section: str) -> str:
    """A section argument as Canvas takes it: a name (canvas_ids.parse_section's 'name:X')
    becomes the id of the one section of that name in the course, as Canvas shows it
    exactly, else the one whose name differs only in case (or surrounding spaces); ids and sis_section_id:X pass.

    Raises CanvasNotFound naming the course's sections (name and id) when no section or
    several have that name; CanvasError when the sections cannot be read."""
    name = canvas_ids.section_name(section)
    if name is None:
        return section
    sections = canvas.sections(course)
    exact = [s for s in sections if s.get("name") == name]
    folded = [s for s in sections if str(s.get("name") or "").strip().casefold() == name.strip().casefold()]
    for found in (exact, folded):
        if len(found) == 1:
            return str(found[0]["id"])
        if len(found) > 1:
            raise cc.CanvasNotFound(f"course {course} has {len(found)} sections named {name!r}: "
                                    f"{canvas_hints.section_listing(found)}; give the id of the one you mean")
    raise cc.CanvasNotFound(f"no section named {name!r} in course {course}; its sections: "
                            f"{canvas_hints.section_listing(sections) or 'none'} (give the name as shown, or the id)")


def resolve_requests(canvas: cc.Canvas, course: str, requests: list[Any]) -> tuple[list[Any], list]:
    """(requests with their sections as ids, [(request, CanvasNotFound)] of those whose section
    name the course does not have). A request without a section attribute (undo's) passes.
    CanvasError when the course's sections cannot be read."""
    kept, refused = [], []
    for request in requests:
        section = getattr(request, "section", None)
        if not section or canvas_ids.section_name(section) is None:
            kept.append(request)
            continue
        try:
            kept.append(dataclasses.replace(request, section=resolve(canvas, course, section)))
        except cc.CanvasNotFound as exc:
            refused.append((request, exc))
    return kept, refused
