"""Print the model zoo table, or write it into README.md, from the bundled models' configs.

The same table as the docs' model zoo page (``docs/hooks.py``), without site-only links:

    python docs/zoo_table.py            # print it
    python docs/zoo_table.py --readme   # replace the block between the zoo-table markers

The README block is delimited by ``<!-- zoo-table:start -->`` and ``<!-- zoo-table:end -->``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
START, END = "<!-- zoo-table:start -->", "<!-- zoo-table:end -->"


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(HERE))
    import hooks

    table = hooks.zoo_table(plain=True)
    if "--readme" not in argv:
        print(table)
        return 0
    text = README.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"{README}: no {START} ... {END} block", file=sys.stderr)
        return 1
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{table}\n{END}{tail}", encoding="utf-8")
    print(f"updated {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
