"""The tutorials and workflow notebooks are committed in a form people can trust.

These checks read the notebooks as JSON; they do not execute them (CI does that with
``RDLVIZ_QUICK=1 pytest --nbmake tutorials notebooks``):

* every notebook is valid nbformat (every cell with an id), uses the ``python3`` kernel
  and is committed without outputs or execution counts;
* tutorials are numbered 01..09 in teaching order;
* each tutorial opens with its learning goal and closes with a summary and an exercise;
* each notebook that trains takes its budgets from ``rdlviz.budget`` so CI's quick mode
  can shrink them;
* the two READMEs list every notebook, in order.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((REPO / "tutorials").glob("*.ipynb"))
WORKFLOWS = sorted((REPO / "notebooks").glob("*.ipynb"))
ALL = TUTORIALS + WORKFLOWS
NAMED = re.compile(r"^(\d\d)_[a-z0-9_]+\.ipynb$")


def _id(p: Path) -> str:
    return f"{p.parent.name}/{p.name}"


def _read(path: Path):
    return nbformat.read(str(path), as_version=4)


def _markdown(nb) -> list:
    return [c.source for c in nb.cells if c.cell_type == "markdown"]


def test_there_are_notebooks():
    assert TUTORIALS, "no tutorials found in tutorials/"
    assert {p.name for p in WORKFLOWS} >= {
        "pretraining_dashboard.ipynb", "embedding_explorer.ipynb", "rel_f1_reproduction.ipynb"}


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_valid_and_committed_without_outputs(path):
    nb = _read(path)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", \
        f"{_id(path)}: kernel must be 'python3'"
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, (f"{_id(path)}: cells {dirty} have outputs or execution counts; clear them with "
                       f"`jupyter nbconvert --clear-output --inplace {_id(path)}`")
    assert any(c.cell_type == "code" and c.source.strip() for c in nb.cells), f"{_id(path)} has no code"
    # nbformat.read fills in missing cell ids (with only a warning), so read the file itself.
    no_id = [i for i, c in enumerate(json.loads(path.read_text())["cells"]) if "id" not in c]
    assert not no_id, (f"{_id(path)}: cells {no_id} have no id (nbformat 4.5 requires one); "
                       f"give each a unique short string, e.g. with nbformat.validator.normalize")


def test_tutorials_are_numbered_in_order():
    names = [p.name for p in TUTORIALS]
    bad = [n for n in names if not NAMED.match(n)]
    assert not bad, f"tutorials must be named NN_topic.ipynb: {bad}"
    numbers = [int(NAMED.match(n).group(1)) for n in names]
    assert numbers == list(range(1, 10)), f"tutorials must be numbered 01..09 without gaps, got {numbers}"


@pytest.mark.parametrize("path", TUTORIALS, ids=_id)
def test_tutorial_opens_with_goal_and_closes_with_summary_and_exercise(path):
    nb = _read(path)
    assert nb.cells and nb.cells[0].cell_type == "markdown", f"{_id(path)}: must open with a markdown cell"
    first = nb.cells[0].source
    number = path.name[:2]
    assert first.lstrip().startswith(f"# {number}"), f"{_id(path)}: the title must start with '# {number}'"
    assert re.search(r"learning goal", first, re.I), f"{_id(path)}: the first cell must state a learning goal"
    tail = "\n".join(_markdown(nb)[-2:])
    assert re.search(r"^#+\s*summary", tail, re.I | re.M), f"{_id(path)}: the last cells need a '## Summary'"
    assert re.search(r"^#+\s*exercise", tail, re.I | re.M), f"{_id(path)}: the last cells need a '## Exercise'"
    assert nb.cells[-1].cell_type == "markdown", f"{_id(path)}: end with the exercise, not with code"


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_training_budgets_shrink_in_quick_mode(path):
    code = "\n".join(c.source for c in _read(path).cells if c.cell_type == "code")
    if re.search(r"rdlviz\.(pretrain|finetune)\(", code):
        assert "rdlviz.budget(" in code, (f"{_id(path)} trains but sets no budget with rdlviz.budget(full, quick); "
                                          "CI's quick mode (RDLVIZ_QUICK=1) could not shrink it")


@pytest.mark.parametrize("folder", ["tutorials", "notebooks"])
def test_readme_lists_every_notebook_in_order(folder):
    readme = REPO / folder / "README.md"
    assert readme.exists(), f"{folder}/README.md is missing"
    text = readme.read_text()
    names = [p.name for p in sorted((REPO / folder).glob("*.ipynb"))]
    missing = [n for n in names if n not in text]
    assert not missing, f"{folder}/README.md does not list {missing}"
    if folder == "tutorials":
        positions = [text.index(n) for n in names]
        assert positions == sorted(positions), "tutorials/README.md must list the tutorials in order"
