"""optbias.imports: the static import closure and the hash of the code a job runs."""

from __future__ import annotations

import hashlib

import pytest

from optbias import imports


def write_package(root, files):
    for name, text in files.items():
        path = root / "optbias" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


FILES = {"__init__.py": "", "entry.py": "from .sub import helper\n", "sub/__init__.py": "",
         "sub/helper.py": "X = 1  # a comment\n", "figures.py": "import optbias.entry\n"}


def test_code_sha256_is_the_sha256_of_the_closure_files_in_path_order(tmp_path):
    write_package(tmp_path, FILES)
    digest = hashlib.sha256()  # the known answer, by hand: path, NUL, bytes, NUL for each file in sorted order
    for name in ("optbias/__init__.py", "optbias/entry.py", "optbias/sub/__init__.py", "optbias/sub/helper.py"):
        digest.update(name.encode() + b"\0" + (tmp_path / name).read_bytes() + b"\0")
    assert imports.code_sha256(("optbias.entry",), tmp_path) == digest.hexdigest()


def test_an_edit_inside_the_closure_changes_the_hash_and_one_outside_does_not(tmp_path):
    write_package(tmp_path, FILES)
    before = imports.code_sha256(("optbias.entry",), tmp_path)
    imports.code_sha256.cache_clear()
    (tmp_path / "optbias/figures.py").write_text("import optbias.entry\n'''a new docstring'''\n")
    assert imports.code_sha256(("optbias.entry",), tmp_path) == before  # not imported by the entry
    imports.code_sha256.cache_clear()
    (tmp_path / "optbias/sub/helper.py").write_text("X = 1  # another comment\n")
    assert imports.code_sha256(("optbias.entry",), tmp_path) != before  # every byte of the closure counts
    imports.code_sha256.cache_clear()


def test_an_unknown_module_is_a_clear_error(tmp_path):
    write_package(tmp_path, FILES)
    with pytest.raises(ValueError, match="no module 'optbias.nothere'.*name an optbias module"):
        imports.code_sha256(("optbias.nothere",), tmp_path)


def test_the_training_closure_holds_the_optimizers_and_not_the_figures():
    files = {p.relative_to(imports.SRC).as_posix() for p in
             imports.import_closure([imports.SRC / "optbias/continual/train.py"], imports.SRC)}
    assert {"optbias/continual/loop.py", "optbias/optim/shampoo.py", "optbias/optim/owm.py",
            "optbias/continual/regularizers.py", "optbias/engine.py"} <= files  # registry names followed
    assert not {"optbias/continual/figures.py", "optbias/paper/claims.py", "optbias/plotting.py"} & files


def test_a_registry_name_is_followed_and_a_plain_module_string_is_not(tmp_path):
    """``"optbias.x:Name"`` (a registry row) is an import; ``("optbias.x", "Name")`` (optbias.job's list of
    known errors, which never imports them) is not."""
    write_package(tmp_path, {"__init__.py": "", "row.py": "", "known.py": "",
                             "entry.py": "ROWS = ['optbias.row:Thing']\nKNOWN = (('optbias.known', 'Error'),)\n"})
    files = {p.relative_to(tmp_path).as_posix()
             for p in imports.import_closure([tmp_path / "optbias/entry.py"], tmp_path)}
    assert files == {"optbias/__init__.py", "optbias/row.py"}
