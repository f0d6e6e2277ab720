"""The check machinery itself: what a student sees in every situation."""

from __future__ import annotations

import pkgutil
from pathlib import Path

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

    assert "(helper is still a stub)" in check(double).text()
    assert "(<code>helper</code> is still a stub)" in check(double)._repr_html_()

    def method(x):
        raise NotImplementedError("Linear.forward")

    assert "(Linear.forward is still a stub)" in check(method).text()

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
        (lambda x: None, "forget the return"),
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


# --------------------------------------------------------------------------- dtype
def test_float64_result_for_float32_inputs_fails_with_why_it_matters():
    result = check(lambda x: (2 * x).astype(np.float64))
    assert result.status == core.FAILED
    assert "dtype float64" in result.message and "float32" in result.message
    for words in ("memory", "slower", "spreads"):
        assert words in result.hint
    assert check(lambda x: 2.0 * x).passed  # a Python float keeps float32


def test_a_python_float_loss_is_fine_and_a_one_element_array_is_not():
    cases = [Case("x", (np.arange(4, dtype=np.float32),))]

    def ref_mean(x):
        return np.float32(x.mean())

    assert run_check("mean", lambda x: float(x.mean()), ref_mean, cases).passed
    result = run_check("mean", lambda x: x.mean(keepdims=True), ref_mean, cases)
    assert result.status == core.FAILED and "shape (1,)" in result.message
    assert "scalar" in result.hint


def test_a_count_is_compared_exactly_without_a_tolerance():
    result = run_check("count", lambda: 3, lambda: 4, [Case("calls")])
    assert result.status == core.FAILED
    assert "the result is 3, but it should be 4." in result.message
    assert "tolerance" not in result.text()


# --------------------------------------------------------------------------- in place
def ref_step(params, grads, lr):
    for name in params:
        params[name] -= lr * grads[name]


def _step_case():
    params = {"W": np.ones((2, 3), np.float32), "b": np.zeros(3, np.float32)}
    grads = {k: np.full_like(v, 0.5) for k, v in params.items()}
    return Case(
        "two parameters",
        (params, grads, 0.1),
        run=lambda impl, params, grads, lr: (impl(params, grads, lr), params),
        in_place=("params",),
    )


def test_in_place_update_that_rebinds_the_callers_arrays_fails():
    def rebinds(params, grads, lr):
        for name in params:
            params[name] = params[name] - lr * grads[name]  # right values, new arrays

    names = ["params", "grads", "lr"]
    result = run_check("step", rebinds, ref_step, [_step_case()], arg_names=names)
    assert result.status == core.FAILED
    assert "params['W']" in result.message and "new array object" in result.message
    assert result.hint == core.IN_PLACE_HINT
    assert run_check("step", ref_step, ref_step, [_step_case()], arg_names=names)


def test_require_in_place_helper_for_class_checks():
    class Holder:
        def __init__(self):
            self.data = np.ones(3, np.float32)

    def run(impl):
        holders = [Holder(), Holder()]
        refs = core.array_refs([h.data for h in holders])
        impl(holders)
        core.require_in_place(refs, [h.data for h in holders], "data of holder ")
        return [h.data for h in holders]

    def good(holders):
        for h in holders:
            h.data -= 1

    def bad(holders):
        for h in holders:
            h.data = h.data - 1

    cases = [Case("two holders", run=run)]
    assert run_check("update", good, good, cases).passed
    result = run_check("update", bad, good, cases)
    assert result.status == core.FAILED
    assert "data of holder [0]" in result.text() and "in place" in result.hint


# --------------------------------------------------------------------------- time
def test_an_infinite_loop_is_stopped_and_reported_in_one_line(monkeypatch):
    monkeypatch.setattr(core, "TIMEOUT_S", 0.3)

    def double(x):
        while True:
            try:
                x = x + 1
            except Exception:  # noqa: BLE001 - a student's catch-all
                continue

    result = check(double)
    assert result.status == core.FAILED
    assert "did not finish in 0.3 s: is there a loop that never ends?" in result.text()
    assert len(result.text().splitlines()) == 2  # the count, and the one line


def test_an_interrupt_inside_a_check_is_one_line():
    def double(x):
        raise KeyboardInterrupt

    result = check(double)
    assert result.status == core.FAILED and "interrupted" in result.message
    assert "Traceback" not in result.text()


# --------------------------------------------------------------------------- messages
def test_backticks_are_code_in_html_and_gone_in_text():
    result = check(lambda x: None)
    assert "`" not in result.text()
    assert "<code>return</code>" in result._repr_html_()


def test_dict_items_with_wordy_keys_read_as_names():
    problem = core.compare({"p.data": 1.0}, {"p.data": 2.0}, "the result")
    assert problem.message.startswith("`p.data` is 1")
    problem = core.compare({"number of calls": 1}, {"number of calls": 2}, "the result")
    assert problem.message == "number of calls is 1, but it should be 2."


# --------------------------------------------------------------------------- labs
LAB_MODULES = sorted(
    m.name
    for m in pkgutil.iter_modules([str(Path(core.__file__).parent)])
    if m.name.startswith("lab")
)  # lab1, lab2, ... and every later lab


def _lab(name, monkeypatch):
    import importlib

    mod = importlib.import_module(f"utils.check.{name}")
    monkeypatch.setattr(mod.LAB, "results", {})
    monkeypatch.delenv("NN_CHECK_STRICT", raising=False)
    return mod


@pytest.mark.parametrize("lab_name", LAB_MODULES)
def test_reference_helper_in_every_lab(lab_name, monkeypatch, capsys):
    mod = _lab(lab_name, monkeypatch)
    lab = mod.LAB
    assert set(lab.references) <= set(lab.exercises)
    for ex in lab.references:
        impl = mod.reference(ex)
        assert "📎 using the reference implementation for" in capsys.readouterr().out
        assert lab.status(ex) == core.USED_REFERENCE
        result = getattr(mod, ex)(impl)
        assert result.status == core.USED_REFERENCE, result.text()
        assert "used the reference" in result.text() and not result.passed
    summary = mod.summary()
    assert not summary.all_passed and "used the reference" in summary.text()
    monkeypatch.setenv("NN_CHECK_STRICT", "1")
    with pytest.raises(core.CheckFailed):
        mod.summary()


def test_reference_object_works_and_own_code_replaces_it(monkeypatch, capsys):
    lab1 = _lab("lab1", monkeypatch)
    from utils.reference import stage1

    relu = lab1.reference("relu")
    z = np.array([[-1.0, 2.0]], np.float32)
    np.testing.assert_array_equal(relu(z), stage1.relu(z))
    assert relu.__name__ == "relu"
    assert lab1.relu(stage1.relu).passed  # one's own (here: a copy) then passes
    assert lab1.LAB.status("relu") == core.PASSED

    lab2 = _lab("lab2", monkeypatch)
    from utils.reference import stage2

    Linear = lab2.reference("linear_forward")  # noqa: N806 - a class
    assert issubclass(Linear, stage2.Linear) and Linear.__name__ == "Linear"
    assert lab2.LAB.status("linear_backward") == core.USED_REFERENCE  # same class

    class Mine(Linear):  # a student's subclass is the student's code
        pass

    assert lab2.linear_forward(Mine).status != core.USED_REFERENCE
    with pytest.raises(ValueError, match="no reference implementation"):
        lab2.reference("nonsense")
    capsys.readouterr()


def test_results_as_dict_is_json_ready_and_in_order(monkeypatch):
    import json

    lab1 = _lab("lab1", monkeypatch)
    lab1.relu(np.abs)
    data = json.loads(json.dumps(lab1.results_as_dict()))
    assert [e["name"] for e in data["exercises"]] == lab1.LAB.exercises
    first = data["exercises"][0]
    assert first["status"] == core.FAILED and first["message"] and first["hint"]
    assert "`" not in first["message"] + first["hint"]
    assert data["exercises"][1]["status"] == core.NOT_RUN
    assert data["passed"] == 0 and data["all_passed"] is False


def test_ready_says_what_a_cell_waits_for(monkeypatch, capsys):
    lab1 = _lab("lab1", monkeypatch)

    def relu(z):
        raise NotImplementedError("relu")

    lab1.relu(relu)
    assert not lab1.ready("relu", "softmax")
    said = capsys.readouterr().out.strip()
    assert said == (
        "⏳ waiting for: relu (not implemented yet), softmax (not checked yet); "
        "skipping this cell."
    )
    from utils.reference import stage1

    lab1.relu(stage1.relu)
    lab1.reference("softmax")
    capsys.readouterr()
    assert lab1.ready("relu", "softmax")
    assert capsys.readouterr().out == ""


def test_guarded_check_never_raises(monkeypatch):
    lab = Lab("Lab 0", ["boom"])

    def boom(student):
        raise RuntimeError("a bug in the check")

    result = lab.guard("boom", boom)(lambda: 1)
    assert result.status == core.FAILED and "RuntimeError" in result.message
    assert lab.status("boom") == core.FAILED


def test_items_of_what_a_run_built_are_named_by_their_keys():
    def run(impl):
        return {"dW": impl(), "number of calls": 2}

    cases = [Case("one", run=run)]
    result = run_check("layer", lambda: np.zeros(2), lambda: np.ones(2), cases)
    assert "Case 'one': dW has wrong values" in result.text()
    assert "result[" not in result.text()


def test_a_named_output_item_reads_as_words():
    got = (None, {"W1": np.zeros(2)})
    expected = (None, {"W1": np.ones(2)})
    names = ("return value", "params after the update")
    problem = core.compare(got, expected, "the result", names=names)
    assert problem.message.startswith("`params['W1']` after the update has wrong")


def test_an_integration_check_given_reference_pieces_says_so(monkeypatch, capsys):
    lab1 = _lab("lab1", monkeypatch)
    assert "training" not in lab1.LAB.references  # an integration check
    result = lab1.training(lab1.reference("train_step"))
    assert result.status == core.USED_REFERENCE
    capsys.readouterr()


def test_a_quoted_warning_is_never_cut_mid_word():
    from utils.check.core import _safe_repr, compare

    warning = "overflow encountered in exp; invalid value encountered in divide"
    problem = compare(warning, "none", "the warnings NumPy raised")
    assert f"got {warning!r}." in problem.message  # whole
    words = " ".join(["overflow encountered in exp"] * 5)
    short = _safe_repr(words, 40)
    assert short.endswith("...") and len(short) <= 40
    assert repr(words).startswith(short[:-3]) and short[:-3].split()[-1] in {
        "overflow",
        "encountered",
        "in",
        "exp",
    }


@pytest.mark.parametrize("dtype", [bool, np.int64, np.float16])
def test_a_bool_int_or_float16_result_fails_where_float32_is_expected(dtype):
    from utils.check.core import compare

    expected = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    problem = compare(expected.astype(dtype), expected, "the result")
    assert problem is not None and str(np.dtype(dtype)) in problem.message
    assert "(x > 0).astype(x.dtype)" in problem.hint
