"""README's two commands, read from README.md (never retyped), and the check of the main one.

Used by ``.ci/run`` (``python3 tests/readme_commands.py main|test|jax-install`` prints a command;
``check-main OUT ERR STATUS`` checks a run of the main one) and by the slow fresh-venv test.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".dcm", ".bmp", ".tif", ".tiff")


def readme_commands(readme: Path = ROOT / "README.md") -> dict[str, str]:
    """``{"main": ..., "test": ...}``: the first two ``bash`` blocks of "## The two commands"."""
    text = readme.read_text(encoding="utf-8")
    section = text.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    if len(blocks) < 2:
        raise SystemExit("README.md: '## The two commands' must hold two ```bash blocks")
    main, test = (" ".join(b.strip().split("\n")) for b in blocks[:2])
    return {"main": main, "test": test}


def doc_command(marker: str, page: Path = ROOT / "docs" / "guide" / "backends.md") -> str:
    """The first ``bash`` block after ``<!-- ci:MARKER -->`` in a docs page (e.g. the
    TensorFlow-free install of ``docs/guide/backends.md``)."""
    text = page.read_text(encoding="utf-8").split(f"<!-- ci:{marker} -->", 1)[1]
    block = re.search(r"```bash\n(.*?)```", text, flags=re.S)
    if block is None:
        raise SystemExit(f"{page}: no ```bash block after <!-- ci:{marker} -->")
    return " ".join(block.group(1).strip().split("\n"))


def example_films(root: Path = ROOT) -> list[str]:
    """Names of the bundled example X-rays the main command predicts."""
    folder = root / "examples" / "xrays"
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def check_main(stdout: str, stderr: str, status: int, root: Path = ROOT) -> list[str]:
    """What is wrong with one run of README's main command (empty when it is right)."""
    problems = []
    if status != 0:
        problems.append(f"exit status {status}")
    if "Traceback" in stdout + stderr:
        problems.append("a traceback was printed")
    rows = [line for line in stdout.splitlines() if line.strip()]
    for name in example_films(root):
        row = next((r for r in rows if name in r), None)
        if row is None:
            problems.append(f"no prediction for {name}")
        elif "ERROR" in row or not re.search(r"\b(normal|pneumonia)\b", row):
            problems.append(f"no label for {name}: {row.strip()}")
    return problems


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what in ("main", "test"):
        print(readme_commands()[what])
    elif what == "jax-install":
        print(doc_command(what))
    elif what == "check-main" and len(sys.argv) == 5:
        out = Path(sys.argv[2]).read_text(encoding="utf-8", errors="replace")
        err = Path(sys.argv[3]).read_text(encoding="utf-8", errors="replace")
        found = check_main(out, err, int(sys.argv[4]))
        for problem in found:
            print(f"README main command: {problem}", file=sys.stderr)
        if found:
            print("--- stdout\n" + out[-4000:] + "\n--- stderr\n" + err[-4000:], file=sys.stderr)
        sys.exit(1 if found else 0)
    else:
        raise SystemExit("usage: readme_commands.py main | test | jax-install | "
                         "check-main OUT ERR STATUS")
