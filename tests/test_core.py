"""The check machinery itself: what a student sees in every situation."""

from __future__ import annotations

import numpy as np
import pytest

from utils.check import core
from utils.check.core import Case, Lab, Mistake, run_check


def ref_double(x):
    return 2 * x


CASES = [Case("a (3, 2) array", (np.arange(6, dtype=np.float32).reshape(3, 2) - 2,))]


def check(student, **kw):
    return run_check("double", student, ref_double, CASES, arg_names=["x"], **kw)


def test_pass_is_one_line_with_the_count():
    result = check(lambda x: x + x)
    assert result.passed and bool(result)
    assert result.text() == "✅ double: all 1 cases passed."
    assert "passed" in result._repr_html_()


def test_stub_says_not_implemented_without_traceback():
    def double(x):
        raise NotImplementedError("double")

    result = check(double)
    assert result.status == core.NOT_IMPLEMENTED
    assert "not implemented yet" in result.text()
    assert "Traceback" not in result.text()
    assert "still a stub" not in result.text()  # the exercise's own stub


def test_stub_of_another_function_is_named():
    def double(x):
        raise NotImplementedError("helper")

    assert "(`helper` is still a stub)" in check(double).text()

    def method(x):
        raise NotImplementedError("Linear.forward")

    assert "(`Linear.forward` is still a stub)" in check(method).text()

    def forward(x):
        raise NotImplementedError("Model must define forward")

    assert "(Model must define forward)" in check(forward).text()


def test_exception_shows_the_students_line_not_utils():
    def double(x):
        y = x * 2
        return y @ np.ones((5, 5))

    result = check(double)
    assert result.status == core.FAILED
    assert "your code raised" in result.message
    assert "return y @ np.ones((5, 5))" in result.message
    assert "utils/" not in result.text()
    assert "shapes" in result.hint


@pytest.mark.parametrize(
    ("student", "words"),
    [
        (lambda x: None, "forget the `return`"),
        (lambda x: (2 * x).tolist(), "NumPy array"),
        (lambda x: (2 * x).T, "shape (2, 3)"),
        (lambda x: 2 * x + np.float32("nan"), "nan"),
        (lambda x: np.full(x.shape, np.inf), "inf"),
        (lambda x: (2 * x).astype(str), "dtype"),
        (lambda x: 2 * x + 0.5, "worst at index"),
    ],
)
def test_wrong_outputs_get_a_clear_message(student, words):
    result = check(student)
    assert result.status == core.FAILED
    assert words.lower() in result.text().lower()


def test_wrong_values_message_states_tolerance_and_hides_full_array():
    result = check(lambda x: 2 * x + 0.5)
    assert "rtol=0.0001" in result.message and "atol=1e-05" in result.message
    assert "[[" not in result.message  # never the full expected array


def test_mutating_the_input_is_caught_and_the_callers_array_is_safe():
    x = np.arange(6, dtype=np.float32).reshape(3, 2) - 2
    before = x.copy()

    def double(x):
        x *= 2
        return x

    result = run_check("double", double, ref_double, [Case("x", (x,))], arg_names=["x"])
    assert result.status == core.FAILED and "changed its input `x`" in result.message
    np.testing.assert_array_equal(x, before)  # checks pass copies


def test_known_mistake_and_generic_hints():
    triple = Mistake("you tripled it", lambda x: 3 * x)
    assert check(lambda x: 3 * x, mistakes=[triple]).hint == "you tripled it"
    assert "wrong sign" in check(lambda x: -2 * x).hint
    assert "3× too large" in check(lambda x: 6 * x).hint  # batch size 3


def test_not_callable_is_explained():
    result = check(np.zeros(3))
    assert result.status == core.FAILED and "without calling it" in result.hint


def test_strict_mode_raises_on_failure_and_not_on_success(monkeypatch):
    monkeypatch.setenv("NN_CHECK_STRICT", "1")
    assert check(lambda x: 2 * x).passed
    with pytest.raises(core.CheckFailed, match="double"):
        check(lambda x: 3 * x)

    def stub(x):
        raise NotImplementedError

    with pytest.raises(core.CheckFailed, match="not implemented"):
        check(stub)


def test_summary_lists_every_exercise_in_order(monkeypatch):
    monkeypatch.delenv("NN_CHECK_STRICT", raising=False)
    lab = Lab("Lab 0", ["double", "other", "third"])
    check(lambda x: 2 * x, record=lab.record)
    check(lambda x: 3 * x, record=lab.record)  # the latest result counts
    summary = lab.summary()
    assert not summary.all_passed
    text = summary.text()
    assert "0 of 3 exercises passed" in text
    assert text.index("double") < text.index("other") < text.index("third")
    assert "failed" in text and "not run" in text
    assert "<table>" in summary._repr_html_()
    monkeypatch.setenv("NN_CHECK_STRICT", "1")
    with pytest.raises(core.CheckFailed):
        lab.summary()


def test_compare_walks_dicts_and_tuples():
    got = {"W": np.ones((2, 2)), "b": np.zeros(2)}
    expected = {"W": np.ones((2, 2)), "b": np.ones(2)}
    problem = core.compare(got, expected, "grads")
    assert problem is not None and "grads['b']" in problem.message
    problem = core.compare((1.0, 2.0), (1.0, 2.5), "out", names=("loss", "acc"))
    assert problem is not None and "`acc`" in problem.message
    assert core.compare({"a": 1.0}, {"a": 1.0, "b": 2.0}, "d").message.endswith(
        "missing the key(s) ['b']."
    )


def test_shape_given_as_two_arguments_gets_a_hint():
    result = check(lambda x: np.zeros(3, 2))
    assert "one tuple" in result.hint
