"""Install hints work from a clone: pneumozoo is not on the package index, so
``pip install "pneumozoo[dicom]"`` fails; every doc page, example and error message must give a
form that works (``pip install ".[dicom]"`` in the clone, or the extra's own package)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# pip install pneumozoo[x] / 'pneumozoo[x]' / "pneumozoo[x]" / pneumozoo==1.0 ...: all need the index.
BROKEN = re.compile(r"""pip3?\s+install\s+(?:-[-\w]+\s+)*['"]?pneumozoo\b""")
PLACES = ("README.md", "docs", "examples", "src", "recipes", "benchmarks", "mkdocs.yml")
SUFFIXES = {".md", ".py", ".yml", ".yaml", ".txt", ".toml", ".cfg", ".sh"}


def _files() -> list[Path]:
    out: list[Path] = []
    for place in PLACES:
        path = ROOT / place
        if path.is_file():
            out.append(path)
        elif path.is_dir():
            out += [p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file()]
    return out


def test_no_page_or_message_installs_pneumozoo_from_the_index() -> None:
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
             for p in _files() for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if BROKEN.search(line)]
    assert not found, "these install pneumozoo from the package index, where it is not:\n" + \
        "\n".join(found)


def test_the_pattern_catches_the_broken_forms() -> None:
    for bad in ('pip install "pneumozoo[dicom]"', "pip install 'pneumozoo[plot]'",
                "pip install pneumozoo", "pip install -U pneumozoo[dicom]"):
        assert BROKEN.search(bad), bad
    for good in ('pip install ".[dicom]"', "pip install pydicom", "pip install -e '.[dev]'",
                 "pip install . && pneumozoo predict examples/xrays/"):
        assert not BROKEN.search(good), good


def test_the_missing_extra_messages_say_a_working_command() -> None:
    from pneumozoo import dicom, plot

    for message, extra, package in ((dicom._MISSING_EXTRA, "dicom", "pydicom"),
                                    (plot._MISSING, "plot", "matplotlib")):
        assert f"pip install '.[{extra}]'" in message and f"pip install {package}" in message
