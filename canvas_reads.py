"""Canvas's answers read once per run beside the lookups by SIS ID: a course, its sections,
a section wherever it is now, the account's SIS imports, a login ID's owner. Each is asked
at most once a run and kept; known_course and known_section say what an earlier answer
showed without a request (the names beside the ids in every line)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from canvas_errors import CanvasBadRequest, CanvasBadResponse, CanvasForbidden, CanvasNotFound, CanvasScopeMissing
from canvas_http import Client
from canvas_ids import course_path, id_ref, sis_ref


class Reads(Client):
    """The reads asked once per run, over canvas_http.Client (canvas_common.Canvas adds the
    lookups by SIS ID and the enrollment calls)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._seen: dict[str, dict] = {}  # course and section answers, asked once
        self._lists: dict[str, list] = {}  # a course's sections, asked once
        self._sis_imports: list[dict] | bool | None = False  # False: not asked yet

    def course(self, course: str) -> dict:
        """GET /api/v1/courses/:id?include[]=concluded, once per run: its account_id, and
        "concluded" as Course#concluded? (app/models/course.rb) judges it, end dates included."""
        return self._once(course_path(course), f"course {course} not found: check the course id",
                          {"include[]": "concluded"})

    def sections(self, course: str) -> list[dict]:
        """GET /api/v1/courses/:course_id/sections, once per run: the course's active sections."""
        path = f"{course_path(course)}/sections"
        if path not in self._lists:
            self._lists[path] = self.get_all(path, {}, f"course {course} not found: check the course id")
        return self._lists[path]

    def any_section(self, section: str) -> dict | None:
        """GET /api/v1/sections/:id: a section in whatever course it is now (course_id), and
        the course it was cross-listed from (nonxlist_course_id); None if Canvas has none."""
        try:
            return self._once(f"/api/v1/sections/{quote(id_ref(section, 'sis_section_id'), safe=':')}", "")
        except CanvasNotFound:
            return None

    def section(self, course: str, section: str) -> dict:
        """GET /api/v1/courses/:course_id/sections/:id, once per run; only the course's own."""
        return self._once(f"{course_path(course)}/sections/{quote(id_ref(section, 'sis_section_id'), safe=':')}",
                          f"section {section} not found in course {course}")

    def known_course(self, course: str) -> dict | None:
        """The course's answer if this run asked for it already (course()), else None: no request."""
        return self._seen.get(course_path(course))

    def known_section(self, course: str, section_id: object) -> dict | None:
        """A section of the course by Canvas's id, if this run's answers showed it already
        (sections() or section()), else None: no request."""
        prefix = course_path(course) + "/sections"
        answers = [*self._lists.get(prefix, []),
                   *(body for path, body in self._seen.items() if path.startswith(prefix + "/"))]
        return next((s for s in answers if isinstance(s, dict) and section_id is not None
                     and str(s.get("id")) == str(section_id)), None)

    def _once(self, path: str, not_found: str, params=None) -> dict:
        if path not in self._seen:
            body = self.request("GET", path, not_found=not_found, params=params)
            if not isinstance(body, dict):
                raise CanvasBadResponse("Canvas answered with something that is not an object")
            self._seen[path] = body
        return self._seen[path]

    def listed_section(self, course: str, section: str) -> dict | None:
        """A section from the course's sections list if this run read it already (--from), else None."""
        listed = self._lists.get(f"{course_path(course)}/sections") or []
        sis = section[len("sis_section_id:"):] if section.startswith("sis_section_id:") else None
        return next((s for s in listed if (s.get("sis_section_id") == sis if sis else str(s.get("id")) == section)),
                    None)

    def sis_imports_since(self, since: str) -> list[dict] | None:
        """GET /api/v1/accounts/self/sis_imports?created_since=T (app/controllers/sis_imports_api_controller.rb
        index: newest first, each with created_at and ended_at), once per run: the SIS imports that
        started after since (ISO 8601); None when the token may not see them (the right to manage
        SIS) or the account has none enabled."""
        if self._sis_imports is False:
            try:
                self._sis_imports = self.get_all("/api/v1/accounts/self/sis_imports", {"created_since": since}, "",
                                                 key="sis_imports")
            except (CanvasNotFound, CanvasForbidden, CanvasScopeMissing, CanvasBadRequest):
                self._sis_imports = None
        return self._sis_imports if isinstance(self._sis_imports, list) else None

    def login_owner(self, login: str) -> dict | None:
        """GET /api/v1/users/sis_login_id:X (lib/api.rb: login IDs compared case-insensitively): the
        user whose login ID this is, with their SIS ID when the token may read it; None if nobody's."""
        try:
            body = self.request("GET", f"/api/v1/users/{quote(sis_ref('sis_login_id', login), safe=':')}",
                                not_found="")
        except (CanvasNotFound, CanvasForbidden, CanvasScopeMissing):
            return None
        return body if isinstance(body, dict) else None
