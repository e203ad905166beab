"""Common mistakes, each reproduced: the source of ``docs/guide/mistakes.md``.

Every :class:`Case` says what a user did (a Python snippet or a command) and holds a callable
that does exactly that against a small model in a scratch folder. ``docs/hooks.py`` runs the
cases and writes the message pneumozoo actually gives into the page (``<!-- gen:mistakes -->``),
and ``tests/test_mistakes.py`` runs the same list and checks that each mistake gets
pneumozoo's own error: a :class:`~pneumozoo.errors.PneumozooError` (or a per-file error, or
for commands the documented exit status and exactly one line on stderr) whose message is one
non-empty line.

The scratch folder is the working directory while a case runs, and every path in the cases
is relative to it, so the messages do not depend on where they were produced.

    python docs/mistakes.py      # print every case and its message
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXAMPLE_FILM = ROOT / "examples" / "xrays" / "test224-normal-IM-0001-0001.jpeg"
EXAMPLE_SICK = ROOT / "examples" / "xrays" / "test224-pneumonia-person100_bacteria_475.jpeg"

#: What a case is expected to end with.
#: ``error``: a PneumozooError is raised; ``per-file``: the prediction of that film carries
#: an ``error`` (the others go on); ``works``: no error (shown for what people expect to
#: fail); ``exit N``: the command exits with status N and one line on stderr.
EXPECTATIONS = ("error", "per-file", "works", "exit 1", "exit 2")


@dataclass
class Context:
    """What the cases run against: a scratch working folder and a small model."""

    workdir: Path
    _model: Any = None

    @property
    def model(self) -> Any:
        """``pneumozoo.build_model("cnn4", input_size=48)``, built once."""
        if self._model is None:
            import keras

            import pneumozoo

            keras.utils.set_random_seed(0)
            self._model = pneumozoo.build_model("cnn4", input_size=48)
        return self._model


@dataclass(frozen=True)
class Case:
    """One mistake.

    Attributes:
        title: The mistake, as a heading.
        shown: What the user typed: Python (``>>>`` is added) or a command line.
        expect: One of :data:`EXPECTATIONS`.
        fix: What to do instead (Markdown, one or two sentences).
        run: For Python cases, reproduces ``shown`` (raises, or returns what is displayed).
        argv: For command cases, the arguments after ``pneumozoo``.
    """

    title: str
    shown: str
    expect: str
    fix: str
    run: Callable[[Context], Any] | None = None
    argv: tuple[str, ...] = field(default=())

    @property
    def is_cli(self) -> bool:
        """True for a command line case."""
        return bool(self.argv)


@dataclass(frozen=True)
class Outcome:
    """What running a case gave."""

    kind: str  # "error", "per-file", "works" or "exit N"
    message: str  # the one-line message (or, for "works", the repr of the value)
    error_type: type | None = None  # the exception class, for "error"
    stderr: str = ""  # every stderr line, for commands
    exit_code: int | None = None


# --------------------------------------------------------------------------------------------
# The scratch folder
# --------------------------------------------------------------------------------------------
def _write_png(path: Path, pixels: Any) -> None:
    from PIL import Image

    Image.fromarray(pixels).save(path)


def prepare(workdir: Path) -> None:
    """Fill ``workdir`` with what the cases use (relative paths only)."""
    import numpy as np

    (workdir / "empty_folder").mkdir()
    shutil.copyfile(EXAMPLE_FILM, workdir / "chest.jpeg")
    rng = np.random.default_rng(0)
    _write_png(workdir / "tiny.png", rng.integers(0, 256, (8, 8), dtype=np.uint8))
    _write_png(workdir / "blank.png", np.full((512, 512), 128, np.uint8))
    for label, film in (("NORMAL", EXAMPLE_FILM), ("PNEUMONIA", EXAMPLE_SICK)):
        (workdir / "site" / label).mkdir(parents=True)
        shutil.copyfile(film, workdir / "site" / label / film.name)


@contextlib.contextmanager
def scratch() -> Iterator[Context]:
    """A prepared scratch folder as the working directory, removed afterwards."""
    old = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="pneumozoo-mistakes-") as tmp:
        workdir = Path(tmp)
        prepare(workdir)
        os.chdir(workdir)
        try:
            yield Context(workdir)
        finally:
            os.chdir(old)


# --------------------------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------------------------
def _pz() -> Any:
    import pneumozoo

    return pneumozoo


def _film() -> Any:
    from pneumozoo import read_xray

    return read_xray("chest.jpeg")


def _float_film(ctx: Context) -> Any:
    pz = _pz()
    film = _film() / 255.0
    return (pz.predict(ctx.model, film)[0].probability
            == pz.predict(ctx.model, film * 255)[0].probability)


def _plain_keras(ctx: Context) -> Any:
    import keras

    plain = keras.Sequential([keras.Input((48, 48, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax")], name="my_model")
    return _pz().predict(plain, "chest.jpeg")


def _unknown_preset(ctx: Context) -> Any:
    pz = _pz()
    records = pz.scan_folder("site")
    return pz.fit(ctx.model, records, records, augment="strong", epochs=1, verbose=0)


CASES: list[Case] = [
    Case(
        title="Passing a model's name where a model is expected",
        shown='pneumozoo.predict("xraynet-binary-v2", "chest.jpeg")',
        expect="error",
        fix="Load the model once, then pass it: `model = pneumozoo.load_pretrained"
            '("xraynet-binary-v2")`. On the command line the name is right: '
            "`pneumozoo predict chest.jpeg --model xraynet-binary-v2`.",
        run=lambda ctx: _pz().predict("xraynet-binary-v2", "chest.jpeg"),
    ),
    Case(
        title="Passing a plain Keras model",
        shown='pneumozoo.predict(my_keras_model, "chest.jpeg")',
        expect="error",
        fix="pneumozoo's functions need a pneumozoo model, which carries its preprocessing, "
            "classes and threshold: build one with `pneumozoo.build_model(arch)` and train it "
            "with `pneumozoo.fit`, or load one with `pneumozoo.load_pretrained`.",
        run=_plain_keras,
    ),
    Case(
        title="Evaluating on nothing",
        shown="pneumozoo.evaluate(model, [])",
        expect="error",
        fix="Pass a split folder with `NORMAL/` and `PNEUMONIA/` (e.g. `chest_xray/test`) or a "
            "non-empty list of records (`pneumozoo.scan_folder(...)`).",
        run=lambda ctx: _pz().evaluate(ctx.model, []),
    ),
    Case(
        title="Predicting a folder without images",
        shown='pneumozoo.predict(model, "empty_folder/")',
        expect="error",
        fix="Check the path: folders are walked recursively, and only image files "
            "(JPEG, PNG, DICOM...) are predicted.",
        run=lambda ctx: _pz().predict(ctx.model, "empty_folder/"),
    ),
    Case(
        title="An image too small to be a film",
        shown='pneumozoo.predict(model, ["tiny.png", "chest.jpeg"])[0].error',
        expect="per-file",
        fix="An 8x8 thumbnail or icon is not a chest film. It is a per-file error: the other "
            "films are still predicted (the command line reports it and exits with status 1).",
        run=lambda ctx: _pz().predict(ctx.model, ["tiny.png", "chest.jpeg"])[0],
    ),
    Case(
        title="A blank frame",
        shown='pneumozoo.predict(model, ["blank.png", "chest.jpeg"])[0].error',
        expect="per-file",
        fix="A constant image (an empty export, a failed DICOM window) has nothing to classify; "
            "it is reported, never given a label.",
        run=lambda ctx: _pz().predict(ctx.model, ["blank.png", "chest.jpeg"])[0],
    ),
    Case(
        title="A threshold outside [0, 1]",
        shown='pneumozoo.predict(model, "chest.jpeg", threshold=1.5)',
        expect="error",
        fix="The threshold is on P(pneumonia), a probability; leave it out to use the model's "
            "own (`model.threshold`, chosen on validation data).",
        run=lambda ctx: _pz().predict(ctx.model, "chest.jpeg", threshold=1.5),
    ),
    Case(
        title="Films as floats in 0..1",
        shown='film = pneumozoo.read_xray("chest.jpeg") / 255.0  # floats in 0..1\n'
              'pneumozoo.predict(model, film)[0].probability == '
              'pneumozoo.predict(model, film * 255)[0].probability',
        expect="works",
        fix="Not a mistake: float arrays in 0..1 are rescaled to 0..255 (what `read_xray` "
            "returns and the models expect), so both give the same prediction. Other ranges "
            "are taken as 0..255 pixel values.",
        run=_float_film,
    ),
    Case(
        title="An invalid recipe",
        shown="pneumozoo.Recipe(epochs=0)",
        expect="error",
        fix="Every recipe setting is checked when the recipe is made; see "
            "[`Recipe`][pneumozoo.recipe.Recipe] for the valid values.",
        run=lambda ctx: _pz().Recipe(epochs=0),
    ),
    Case(
        title="An unknown augmentation preset",
        shown='pneumozoo.fit(model, train, val, augment="strong")',
        expect="error",
        fix="The message lists the presets (see [augmentation presets](augmentation.md)); "
            "`none` turns augmentation off.",
        run=_unknown_preset,
    ),
    Case(
        title="A path that does not exist",
        shown="pneumozoo predict /missing/path",
        expect="exit 2",
        fix="Nothing could be predicted, so the command fails before loading a model. When "
            "only some inputs are unreadable, the others are predicted and the exit status "
            "is 1.",
        argv=("predict", "/missing/path"),
    ),
    Case(
        title="An architecture where a pretrained model is expected",
        shown="pneumozoo predict chest.jpeg --model cnn4",
        expect="exit 2",
        fix="`cnn4` is an architecture (`pneumozoo models --archs`), not trained weights: "
            "pick a pretrained model from `pneumozoo models`, or train one.",
        argv=("predict", "chest.jpeg", "--model", "cnn4"),
    ),
    Case(
        title="A batch size of zero",
        shown="pneumozoo predict chest.jpeg --batch-size 0",
        expect="exit 2",
        fix="Every option is checked when the command line is read, before any work starts.",
        argv=("predict", "chest.jpeg", "--batch-size", "0"),
    ),
]


# --------------------------------------------------------------------------------------------
# Running them
# --------------------------------------------------------------------------------------------
def run_cli(argv: tuple[str, ...]) -> tuple[int, str, str]:
    """``pneumozoo ARGV`` in this process: ``(exit status, stdout, stderr)``."""
    from pneumozoo.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as e:  # argparse's usage errors
            code = int(e.code or 0)
    return code, out.getvalue(), err.getvalue()


def run_case(case: Case, ctx: Context) -> Outcome:
    """Run one case in ``ctx`` (the working directory must be ``ctx.workdir``).

    Only pneumozoo's own errors are caught: anything else propagates (a bug the docs must
    not hide).
    """
    from pneumozoo.errors import PneumozooError

    if case.is_cli:
        code, _, err = run_cli(case.argv)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        return Outcome(kind=f"exit {code}", message=lines[-1] if lines else "", stderr=err,
                       exit_code=code)
    assert case.run is not None
    try:
        value = case.run(ctx)
    except PneumozooError as e:
        return Outcome(kind="error", message=str(e), error_type=type(e))
    if case.expect == "per-file" and getattr(value, "error", None) is not None:
        return Outcome(kind="per-file", message=str(value.error))
    return Outcome(kind="works", message=repr(value))


def run_all() -> list[tuple[Case, Outcome]]:
    """Every case and its outcome, in a fresh scratch folder."""
    with scratch() as ctx:
        return [(case, run_case(case, ctx)) for case in CASES]


def _error_name(cls: type | None) -> str:
    return f"pneumozoo.errors.{cls.__name__}" if cls is not None else "Error"


def markdown(results: list[tuple[Case, Outcome]] | None = None) -> str:
    """The cases as Markdown: what was done, what pneumozoo said, what to do instead."""
    if results is None:
        results = run_all()
    out: list[str] = []
    for case, outcome in results:
        out += [f"### {case.title}", ""]
        if case.is_cli:
            out += ["```console", f"$ {case.shown}", outcome.message,
                    "$ echo $?", str(outcome.exit_code), "```"]
        else:
            lines = case.shown.splitlines()
            shown = [f">>> {lines[0]}", *(f">>> {ln}" for ln in lines[1:])]
            if outcome.kind == "error":
                result = ["Traceback (most recent call last):", "  ...",
                          f"{_error_name(outcome.error_type)}: {outcome.message}"]
            elif outcome.kind == "per-file":
                result = [repr(outcome.message)]
            else:
                result = [outcome.message]
            out += ["```pycon", *shown, *result, "```"]
        out += ["", case.fix, ""]
    return "\n".join(out).rstrip()


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    for case, outcome in run_all():
        print(f"{case.title}\n  {case.shown!r}\n  -> {outcome.kind}: {outcome.message}\n")
