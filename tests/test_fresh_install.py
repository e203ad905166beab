"""README's main command in a fresh virtual environment, as a newcomer runs it (issue 21).

The same check as ``.ci/run``'s first step, so a developer sees a broken first command before
CI does: the working tree's files (tracked and untracked, not ignored) copied to a new folder,
a new ``python3 -m venv`` with nothing from this interpreter's site packages, README's main
command read from README.md and run there, and every example film must get a label.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_commands import ROOT, check_main, readme_commands

pytestmark = pytest.mark.slow


def working_tree_copy(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def test_readme_main_command_in_a_fresh_venv(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout")
    clone = working_tree_copy(tmp_path / "clone")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "TF_CPP_MIN_LOG_LEVEL")}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}"
    env["VIRTUAL_ENV"] = str(env_dir)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    command = readme_commands()["main"]
    proc = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True,
                          text=True, timeout=1500)
    problems = check_main(proc.stdout, proc.stderr, proc.returncode, root=clone)
    assert not problems, (problems, proc.stdout[-3000:], proc.stderr[-3000:])
    # the interpreter really was a fresh one: pneumozoo came from the new venv
    where = subprocess.run([str(env_dir / "bin" / "python"), "-c",
                            "import pneumozoo, sys; print(pneumozoo.__file__, sys.prefix)"],
                           env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert str(env_dir) in where.stdout and str(ROOT / "src") not in where.stdout, where.stdout
