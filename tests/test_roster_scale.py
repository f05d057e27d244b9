"""A whole roster is read however large the course: --from reads 20,100 students (201 pages
of 100) where a lookup's small page cap would have stopped it; a list that goes round is
still refused (canvas_http.get_all, ROSTER_PAGES)."""

import enroll_user

OLD, NEW = "sis_course_id:BIG-2026", "sis_course_id:BIG-2027"
STUDENTS = 20_100


def test_from_reads_a_roster_of_20100_students(canvas, run):
    store = canvas.store
    old = store.add_course("Big Lecture, 2026", "BIG-2026")
    store.add_course("Big Lecture, 2027", "BIG-2027")
    for i in range(STUDENTS):  # seeded through the store: no requests
        store.enroll(store.add_user(f"B{i:05d}", f"Student {i:05d}"), old)
    r = run(enroll_user, NEW, "--from", OLD, "--dry-run")
    assert r.code == 0, r.err
    assert len(r.out.splitlines()) == STUDENTS and not canvas.writes()
    assert f"created {STUDENTS}," in r.err
    pages = canvas.calls("GET", r"/courses/sis_course_id:BIG-2026/enrollments$")
    assert len(pages) == STUDENTS // 100  # each page read once, 100 rows a page
