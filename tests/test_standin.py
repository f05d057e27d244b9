"""The stand-in behaves like Canvas as the notes describe; the other tests rely on it."""

import pytest
import requests

from conftest import TOKEN


@pytest.fixture
def api(canvas):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {TOKEN}"
    session.trust_env = False
    return lambda method, path, **kw: session.request(method, canvas.url + path, **kw)


def test_default_listing_includes_inactive_for_admins_only(canvas, course, api):
    store = canvas.store
    for sis, state in [("A1", "active"), ("I1", "inactive"), ("C1", "completed"), ("V1", "invited")]:
        store.enroll(store.add_user(sis), course, state=state)
    def states():
        listing = api("GET", f"/api/v1/courses/{course.id}/enrollments").json()
        return sorted(e["enrollment_state"] for e in listing)
    assert states() == ["active", "inactive", "invited"]
    store.tokens[TOKEN] = "nosis"
    assert states() == ["active", "invited"]


def test_state_filter_and_user_id_default(canvas, course, api):
    store = canvas.store
    user = store.add_user("S1")
    store.enroll(user, course, state="inactive")
    path = f"/api/v1/courses/{course.id}/enrollments"
    assert api("GET", path, params={"state[]": "active", "sis_user_id[]": "S1"}).json() == []
    assert len(api("GET", path, params={"state": "inactive", "sis_user_id[]": "S1"}).json()) == 1
    assert api("GET", path, params={"user_id": "sis_user_id:S1"}).json() == []  # active/invited only
    assert api("GET", path, params={"user_id": "sis_user_id:nobody"}).status_code == 404


def test_pagination_is_opaque_and_page_numbers_restart(canvas, course, api):
    for n in range(25):
        canvas.store.enroll(canvas.store.add_user(f"S{n:02d}"), course)
    path = f"/api/v1/courses/{course.id}/enrollments"
    first = api("GET", path)
    assert len(first.json()) == 10 and first.links["next"]["url"].count("page=bookmark")
    assert "last" not in first.links
    seen, url = [], canvas.url + path
    while url:
        resp = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
        seen += [e["id"] for e in resp.json()]
        url = resp.links.get("next", {}).get("url")
    assert len(seen) == len(set(seen)) == 25 and "last" in resp.links
    assert api("GET", path, params={"page": 2}).json() == first.json()


def test_enroll_reuses_the_same_section_row_and_doubles_in_another(canvas, course, api):
    store = canvas.store
    user = store.add_user("S1")
    lab = store.add_section(course, "LAB")
    inactive = store.enroll(user, course, state="inactive", section=lab)
    path = f"/api/v1/courses/{course.id}/enrollments"
    form = {"enrollment[user_id]": "sis_user_id:S1", "enrollment[type]": "StudentEnrollment",
            "enrollment[enrollment_state]": "active"}
    second = api("POST", path, data=form).json()  # default section: a second enrollment
    assert second["id"] != inactive.id and inactive.workflow_state == "inactive"
    same = api("POST", path, data={**form, "enrollment[course_section_id]": "sis_section_id:LAB"})
    assert same.json()["id"] == inactive.id and inactive.workflow_state == "active"
    again = api("POST", path, data={**form, "enrollment[enrollment_state]": "inactive"}).json()
    assert again["id"] == second["id"] and again["enrollment_state"] == "active"


def test_delete_without_task_concludes_and_reactivate_wants_inactive(canvas, course, api):
    e = canvas.store.enroll(canvas.store.add_user("S1"), course)
    path = f"/api/v1/courses/{course.id}/enrollments/{e.id}"
    assert api("PUT", path + "/reactivate").json() == {"error": "enrollment not inactive"}
    assert api("DELETE", path, params={"task": "deactivate"}).json()["enrollment_state"] == "inactive"
    assert api("PUT", path + "/reactivate").json()["enrollment_state"] == "active"
    assert api("DELETE", path).json()["enrollment_state"] == "completed"
    assert api("DELETE", path, params={"task": "delete"}).json()["enrollment_state"] == "deleted"
    assert api("DELETE", path).status_code == 404


def test_error_bodies(canvas, course, api):
    assert requests.get(f"{canvas.url}/api/v1/courses/{course.id}/enrollments").json()["status"] \
        == "unauthenticated"
    assert api("GET", "/api/v1/courses/999/enrollments").json() == \
        {"errors": [{"message": "The specified resource does not exist."}]}
    short = api("GET", f"/api/v1/courses/{course.id}/enrollments", params={"sis_user_id[]": "x"})
    assert short.status_code == 400 and "2 or more" in short.text
    canvas.store.tokens[TOKEN] = "nosis"
    sis = api("GET", f"/api/v1/courses/{course.id}/enrollments", params={"sis_user_id[]": "xy"})
    assert sis.json() == {"message": "Insufficient permissions to filter by SIS fields"}


def test_hex_and_plain_sis_forms(canvas, course, api):
    canvas.store.add_user(" padded ")
    assert api("GET", "/api/v1/users/sis_user_id: padded ").status_code == 404  # Canvas strips
    assert api("GET", "/api/v1/users/hex:sis_user_id:" + b" padded ".hex()).status_code == 200


def test_rate_limit_bucket(canvas, course, api):
    canvas.bucket = (100, 0.0, 60)
    first = api("GET", f"/api/v1/courses/{course.id}/enrollments")
    assert float(first.headers["X-Rate-Limit-Remaining"]) == 40
    second = api("GET", f"/api/v1/courses/{course.id}/enrollments")
    assert second.status_code == 429 and "Rate Limit Exceeded" in second.text
    assert canvas.throttled == 1


def test_post_checks_roles_as_the_controller_does(canvas, course):
    """enrollments_api_controller.rb create: role_id of another account, inactive, base mismatch."""
    store = canvas.store
    store.add_user("S1")
    other = store.add_account("Elsewhere")
    inactive = store.add_role("Old", "StudentEnrollment", state="inactive")
    foreign = store.add_role("Theirs", "StudentEnrollment", account=other)
    grader = store.add_role("Grader", "TaEnrollment")

    def post(**fields):
        data = {"enrollment[user_id]": "sis_user_id:S1", **{f"enrollment[{k}]": v for k, v in fields.items()}}
        resp = requests.post(f"{canvas.url}/api/v1/courses/{course.id}/enrollments", data=data,
                             headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
        return resp.status_code, resp.json()
    assert post(role_id=foreign.id) == (400, {"message": "Invalid role"})
    assert post(role_id=inactive.id)[1]["message"].startswith("Cannot create an enrollment with this role")
    assert post(role_id=grader.id, type="StudentEnrollment")[1]["message"] == \
        "The specified type must match the base type for the role"
    status, body = post(role_id=grader.id, type="TaEnrollment")
    assert status == 200 and (body["role"], body["type"], body["role_id"]) == ("Grader", "TaEnrollment", grader.id)


def test_sections_list_is_ordered_by_name_in_numbered_pages(canvas, course, api):
    for name in ("b lab", "A lab", "c lab"):
        canvas.store.add_section(course, f"SIS-{name}", name)
    pages, url = [], f"/api/v1/courses/{course.id}/sections?per_page=2"
    while url:
        answer = api("GET", url)
        pages.append([s["name"] for s in answer.json()])
        url = answer.links.get("next", {}).get("url", "").replace(canvas.url, "")
    assert pages == [["A lab", "b lab"], ["c lab", "Physics 2"], ["Section PHYS2-LAB"]]


def test_a_post_sets_the_section_limit_as_asked_on_the_row_it_returns(canvas, course, api):
    """Course#enroll_user: the limit as sent, false when not sent, on a reused row too."""
    canvas.store.add_user("T1")
    path = f"/api/v1/courses/{course.id}/enrollments"
    form = {"enrollment[user_id]": "sis_user_id:T1", "enrollment[type]": "TaEnrollment",
            "enrollment[enrollment_state]": "active"}
    first = api("POST", path, data={**form, "enrollment[limit_privileges_to_course_section]": "true"}).json()
    assert first["limit_privileges_to_course_section"] is True
    again = api("POST", path, data=form).json()
    assert again["id"] == first["id"] and again["limit_privileges_to_course_section"] is False


def test_the_demo_data_holds_the_previous_round(canvas):
    from standin import seed_demo
    canvas.store.tokens.clear()
    seed_demo(canvas, token=TOKEN, filler=2)
    store = canvas.store
    old = next(c for c in store.courses.values() if c.sis_course_id == "PHYS2-2026")
    new = next(c for c in store.courses.values() if c.sis_course_id == "PHYS2-2027")
    names = {c.id: {s.name for s in store.sections.values() if s.course_id == c.id and s.id != c.default_section_id}
             for c in (old, new)}
    assert names[old.id] - names[new.id] == {"Lab B"} and names[new.id] == {"Lecture", "Lab A"}
    assert store.states_of("S2003", old) == ["inactive", "inactive"]
    assert store.states_of("S2004", old) == ["completed"]
    (ta,) = store.enrollments_of("T3001", old)
    assert ta.type == "TaEnrollment" and ta.limit
    assert not store.enrollments_of("S2001", new)
