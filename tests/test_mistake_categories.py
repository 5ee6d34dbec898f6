"""Hidden tests by category, not by case: for every graded function of every assignment,
the mistake catalogue (tests/mistakes/psK.py) exercises every category of support.CATEGORIES
(in-place changes, the forbidden implementation, the docstring's edge cases, float32), or
says why the category cannot apply. That each planted mistake loses exactly what it says is
test_mistake_catalogue's (test_assignments.py, test_assignments_ps34.py).

`NOT_YET_COVERED` records, per graded function, the categories its catalogue does not yet
exercise (empty now; for work in progress on a new assignment): the test fails on a gap that
is not recorded (a new function, a mistake removed) and on a recorded gap that is covered now
(remove it here).
"""

import importlib

import pytest

from support import CATEGORIES, ROOT, graded_functions, source_notebook

ASSIGNMENTS = sorted(p.name for p in (ROOT / "assignments" / "source").iterdir() if p.is_dir())
NOT_YET_COVERED: dict[str, dict[str, set]] = {}  # every category is covered for every graded function


def catalogue(assignment_id):
    return importlib.import_module(f"mistakes.{assignment_id}")


def test_every_assignment_has_a_catalogue():
    missing = [aid for aid in ASSIGNMENTS if not (ROOT / "tests" / "mistakes" / f"{aid}.py").is_file()]
    assert not missing, f"no tests/mistakes/<assignment>.py for {missing}"


@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_every_category_is_exercised_for_every_graded_function(assignment_id):
    module = catalogue(assignment_id)
    functions = graded_functions(source_notebook(assignment_id))
    assert functions, f"{assignment_id} has no graded functions"
    problems = []
    recorded = NOT_YET_COVERED.get(assignment_id, {})
    for cell, names in functions.items():
        for category in CATEGORIES:
            planted = [m.name for m in module.MISTAKES if m.cell == cell and m.category == category]
            reason = module.NOT_APPLICABLE.get((cell, category))
            gap = category in recorded.get(cell, ())
            if planted and reason:
                problems.append(f"{cell} ({', '.join(names)}), {category}: both planted ({planted[0]}) and "
                                f"marked not applicable")
            elif (planted or (reason and reason.strip())) and gap:
                problems.append(f"{cell}, {category}: covered now; remove it from NOT_YET_COVERED")
            elif not planted and not (reason and reason.strip()) and not gap:
                problems.append(f"{cell} ({', '.join(names)}): no {category} mistake, and no reason why not")
    unknown = [key for key in module.NOT_APPLICABLE if key[0] not in functions or key[1] not in CATEGORIES]
    assert not unknown, f"NOT_APPLICABLE names unknown functions or categories: {unknown}"
    assert set(recorded) <= set(functions), "NOT_YET_COVERED names functions that are not graded"
    assert not problems, "\n".join(problems)
