"""Which library code a job runs, and its hash: the static import closure of ``optbias`` modules.

A result is tied to the code that made it by the SHA-256 of the files that code can execute
(``code_sha256``): the training, probe and Powerprop rules take it as a param, so editing a module
they import reruns exactly them, and every run's metrics.json records it. The DVC stages list the
same closure as their deps (``optbias.versioning.deps``).

The closure is static (``import_closure``): ``import`` statements anywhere in a file (inside
functions too), relative ones resolved, and the ``"optbias.module:Name"`` strings by which the
optimizer registry names classes it imports only when building one (a plain module name in a
string, as ``optbias.job.KNOWN_ERRORS`` has, is not an import). A module imported by a name
computed at run time would be missed (the package has none). Nothing here imports torch.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

SRC = Path(__file__).resolve().parents[1]  # the directory that holds optbias/

PACKAGE = "optbias"
NAMED_MODULE = re.compile(r"^optbias(\.\w+)+:\w+$")  # a registry row's "optbias.optim.owm:OWM"
TRAINING = "optbias.continual.train"  # the entry module of every training job (the rules' param `code`)


def _module_file(module: str, src: Path) -> Path | None:
    """``src/optbias/a/b.py`` or ``src/optbias/a/b/__init__.py`` for module ``optbias.a.b``; None if neither."""
    base = src.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path, src: Path) -> str:
    parts = path.relative_to(src).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


WORKFLOW_IMPORT = re.compile(r"^[ \t]*((?:from[ \t]+optbias[\w.]*[ \t]+import[ \t]+.+)|(?:import[ \t]+optbias[\w.]*.*))$",
                             re.M)


def imported_modules(path: Path, src: Path) -> set[str]:
    """The ``optbias`` modules the Python file ``path`` names: in ``import`` statements anywhere (inside
    functions too), relative ones resolved against its package, and in string constants of the form
    ``"optbias.module"`` or ``"optbias.module:Name"``. ``src``: the directory that holds ``optbias/``.
    A Snakemake file (the Snakefile, ``.smk``: not Python) counts its ``optbias`` import lines."""
    text = path.read_text()
    if path.name == "Snakefile" or path.suffix == ".smk":
        text = "\n".join(m.group(1) for m in WORKFLOW_IMPORT.finditer(text))
    tree = ast.parse(text, filename=str(path))
    inside = path.is_relative_to(src / PACKAGE)
    package = _module_name(path, src) if inside else ""
    if inside and path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # kept below only if it is a module
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and NAMED_MODULE.match(node.value):
            found.add(node.value.partition(":")[0])
    return {m for m in found if (m == PACKAGE or m.startswith(PACKAGE + ".")) and _module_file(m, src) is not None}


def import_closure(files: Iterable[Path], src: Path) -> set[Path]:
    """Every file of the ``optbias`` package that importing ``files`` can execute: the modules they
    name, transitively, and the ``__init__.py`` of every package on the way."""
    todo, seen = list(files), set()
    closure: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in imported_modules(path, src):
            parts = module.split(".")
            for i in range(1, len(parts) + 1):  # optbias/__init__.py, optbias/a/__init__.py, ..., the module
                target = _module_file(".".join(parts[:i]), src)
                if target is not None and target not in closure:
                    closure.add(target)
                    todo.append(target)
    return closure


def files_sha256(files: Iterable[Path], root: Path) -> str:
    """SHA-256 over ``files`` (each path relative to ``root``, then its bytes), in sorted path order."""
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.lru_cache(maxsize=None)
def code_sha256(modules: tuple[str, ...], src: Path = SRC) -> str:
    """The hash of the library code that importing ``modules`` (``("optbias.continual.train",)``) can
    run: ``files_sha256`` of the modules' files and their ``import_closure`` under ``src``. Any byte
    of those files counts, docstrings and comments too; other files of the package do not. Cost:
    one parse of each file of the closure (tens of milliseconds), once per process. Raises
    ``ValueError`` for a module that is not a file under ``src``."""
    files = []
    for module in modules:
        path = _module_file(module, src)
        if path is None:
            raise ValueError(f"code_sha256: no module {module!r} under {src}: name an optbias module, as in "
                             "'optbias.continual.train'")
        files.append(path)
    return files_sha256(set(files) | import_closure(files, src), src)
