"""check.training, in every lab, names the piece that diverges.

Every catalogued mistake of a piece that the integration check puts together (a
loss, an optimizer, a training loop, an operation of the autograd, a layer of the
CNN, ...) is planted alone in a notebook that is otherwise right, as a student
would have it, and that notebook's entry point goes through ``check.training``.
When the run fails, the hint must name that piece, the first one that diverges
among the course's pieces; an exception of the student's code must be shown as
that exception. A mistake that the training run cannot show (state not carried
from one call to another, a recursion that a shallow graph does not reach, ...)
passes; those are listed, with the reason, so that a mistake that newly slips
through is noticed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.catalogue import lab1 as cat1
from tests.catalogue import lab2 as cat2
from tests.catalogue import lab3 as cat3
from tests.catalogue import lab4 as cat4
from tests.catalogue import lab5 as cat5
from utils.check import core, lab1, lab2, lab3, lab4, lab5


# ------------------------------------------------------------------ lab 1
def _lab1(exercise: str, impl: Any) -> tuple[Any, str] | None:
    if exercise == "train_step":
        return impl, "train_step"
    if exercise in ("forward", "cross_entropy", "backward", "sgd_update"):
        return cat1.train_step_using(**{exercise: impl}), exercise
    return None  # relu, softmax, ...: used by the course's forward, not the student's


# ------------------------------------------------------------------ lab 2
_LAB2_PIECE = {
    "linear_forward": "Linear",
    "linear_backward": "Linear",
    "relu": "ReLU",
    "tanh": "Tanh",
    "softmax_cross_entropy": "SoftmaxCrossEntropy",
}


def _lab2(exercise: str, impl: Any) -> tuple[Any, str] | None:
    if exercise in ("network_forward", "network_backward", "network_update"):
        return impl, "Network"
    if exercise == "train_step":
        return impl, "Network"
    piece = _LAB2_PIECE.get(exercise)
    if piece is None:
        return None
    key = "loss" if piece == "SoftmaxCrossEntropy" else piece
    return cat2.network_with(**{key: impl}), piece


# ------------------------------------------------------------------ lab 3
_LAB3_MODEL = "the model classes (Parameter, Module, Sequential, Linear)"


def _lab3(exercise: str, impl: Any) -> tuple[Any, str] | None:
    lab_linear = {"Linear": cat3.LinearAddsIntoGrad}  # the lab's Linear: +=
    if exercise in ("sgd", "momentum", "weight_decay"):
        return cat3.epoch_using(cat3.lab_train_epoch, SGD=impl, **lab_linear), "SGD"
    if exercise == "adam":
        return cat3.epoch_using(cat3.lab_train_epoch, Adam=impl, **lab_linear), "Adam"
    if exercise == "train_epoch":
        return cat3.epoch_using(impl, **lab_linear), "train_epoch"
    if exercise in ("sequential", "linear"):
        name = "Sequential" if exercise == "sequential" else "Linear"
        return cat3.epoch_using(cat3.lab_train_epoch, **{name: impl}), _LAB3_MODEL
    return None  # Parameter and Module: built by the classes above; Dropout: unused


# ------------------------------------------------------------------ lab 4
def _lab4(exercise: str, impl: Any) -> tuple[Any, str] | None:
    if exercise in ("training", "unbroadcast"):
        return None  # unbroadcast: the course's operations call their own
    if exercise == "topological_sort":
        # the notebook's backward calls the notebook's topological_sort
        space = {"topological_sort": impl, "backward": cat4.backward_using(impl)}
        return cat4.lab_using(**space), exercise
    if exercise == "train_epoch":
        return cat4.lab_using(train_epoch=impl), exercise
    return cat4.lab_using(**{lab4._GLOBAL_NAMES[exercise]: impl}), exercise


# ------------------------------------------------------------------ lab 5
def _lab5(exercise: str, impl: Any) -> tuple[Any, str] | None:
    if exercise not in lab5._GLOBAL_NAMES:
        return None  # im2col, col2im: inside the course's Conv2dFunction
    return cat5.lab_using(**{lab5._GLOBAL_NAMES[exercise]: impl}), exercise


LABS: dict[str, tuple[Any, Any, Callable]] = {
    "lab1": (lab1, cat1, _lab1),
    "lab2": (lab2, cat2, _lab2),
    "lab3": (lab3, cat3, _lab3),
    "lab4": (lab4, cat4, _lab4),
    "lab5": (lab5, cat5, _lab5),
}

# mistakes that a training run cannot show, with the reason
PASSES: dict[tuple[str, str], str] = {}


def _entries():
    for lab, (_, cat, build) in LABS.items():
        for i, wrong in enumerate(cat.WRONG):
            if wrong.exercise == "training":
                continue
            built = build(wrong.exercise, wrong.impl)
            if built is None:
                continue
            yield pytest.param(
                lab, wrong.why, *built, id=f"{lab}-{wrong.exercise}-{i}-{wrong.why}"
            )


@pytest.mark.parametrize(("lab", "why", "entry", "piece"), list(_entries()))
def test_training_names_the_piece_that_diverges(lab, why, entry, piece):
    check = LABS[lab][0]
    result = check.training(entry)
    if result.status == core.PASSED:
        assert (lab, why) in PASSES, f"{why}: passed check.training"
        return
    assert (lab, why) not in PASSES, f"{why} now fails: remove it from PASSES"
    assert result.status == core.FAILED, result.text()
    said = f"{result.hint} {result.message}"
    assert f"{piece} is the first piece" in said, f"{why}:\n{result.text()}"
