"""storage.bytecode: the checkout's modules are compiled ahead, so a cold `app.py ask` reads bytecode even where
PYTHONDONTWRITEBYTECODE keeps Python from writing it (0.29 s of a 2.1 s cold start, measured)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from storage.bytecode import ROOT, compile_project, packages


def _tree(root: Path) -> None:
    (root / "app.py").write_text("X = 1\n")
    for name in ("served", "tests", ".venv"):
        (root / name / "inner").mkdir(parents=True)
        (root / name / "__init__.py").write_text("")
        (root / name / "inner" / "__init__.py").write_text("")
        (root / name / "inner" / "mod.py").write_text("Y = 2\n")


def _cached(path: Path) -> bool:
    return Path(importlib.util.cache_from_source(str(path))).is_file()


def test_served_packages_and_app_are_compiled_and_tests_and_hidden_dirs_are_not(tmp_path: Path) -> None:
    _tree(tmp_path)
    assert [p.name for p in packages(tmp_path)] == ["served"]
    assert compile_project(tmp_path) is True
    assert _cached(tmp_path / "app.py") and _cached(tmp_path / "served" / "inner" / "mod.py")
    assert not _cached(tmp_path / "tests" / "inner" / "mod.py")
    assert not _cached(tmp_path / ".venv" / "inner" / "mod.py")


def test_a_module_that_does_not_compile_is_reported(tmp_path: Path) -> None:
    _tree(tmp_path)
    (tmp_path / "served" / "broken.py").write_text("def (:\n")
    assert compile_project(tmp_path) is False
    assert _cached(tmp_path / "served" / "inner" / "mod.py")  # the rest is still compiled


def test_after_it_a_new_process_compiles_none_of_the_checkouts_modules() -> None:
    assert compile_project() is True
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    code = ("import sys, builtins\n"
            "seen = []\n"
            "real = builtins.compile\n"
            "def spy(source, filename, *a, **k):\n"
            "    seen.append(str(filename))\n"
            "    return real(source, filename, *a, **k)\n"
            "builtins.compile = spy\n"
            "import graphs.supervisor, graphs.services, app\n"
            f"print([f for f in seen if f.startswith({str(ROOT) + '/'!r}) and '/.' not in f and '/tests/' not in f])\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout[-2000:]
