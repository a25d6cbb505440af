"""The split into two binary packages: python3-randomd, the library, and randomd, the daemon.

debian/*.install name the modules each package ships.  A module named by
neither would make the build fail (dh_missing); one named by both would make
the two packages conflict; a library module that imports a daemon module would
break `import randomd.client` where only python3-randomd is installed.
"""

import ast
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
PACKAGE = TOP / "randomd"
PREFIX = "usr/lib/python3*/dist-packages/"


def shipped(package: str) -> set[str]:
    """The paths below randomd/ (as in the source tree) that debian/PACKAGE.install ships."""
    paths = set()
    for line in (TOP / "debian" / f"{package}.install").read_text().splitlines():
        entry = line.split("#", 1)[0].split()
        if not entry or not entry[0].startswith(PREFIX + "randomd/"):
            continue
        target = TOP / entry[0].removeprefix(PREFIX)
        assert target.exists(), f"debian/{package}.install names a missing {entry[0]}"
        files = target.rglob("*") if target.is_dir() else [target]
        paths |= {str(f.relative_to(TOP)) for f in files
                  if f.is_file() and "__pycache__" not in f.parts}
    return paths


def source_files() -> set[str]:
    return {str(f.relative_to(TOP)) for f in PACKAGE.rglob("*")
            if f.is_file() and "__pycache__" not in f.parts}


def module_name(path: str) -> str:
    parts = Path(path).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: str) -> set[str]:
    """The randomd modules that the module at *path* imports, anywhere in its body."""
    name = module_name(path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse((TOP / path).read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[: len(base) - node.level + 1] if node.level else []
            stem = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(stem)
            found |= {f"{stem}.{alias.name}" for alias in node.names}
    return {m for m in found if m == "randomd" or m.startswith("randomd.")}


def test_every_file_of_the_package_is_shipped_by_exactly_one_binary_package():
    library, daemon = shipped("python3-randomd"), shipped("randomd")
    assert library & daemon == set(), "shipped twice"
    assert source_files() - (library | daemon) == set(), "shipped by neither"


def test_the_library_package_holds_the_client_and_not_the_daemon():
    library = shipped("python3-randomd")
    assert {"randomd/client/__init__.py", "randomd/client/aio.py",
            "randomd/client/py.typed"} <= library
    assert "randomd/daemon.py" not in library and "randomd/ctl/cli.py" not in library


def test_the_library_imports_only_what_python3_randomd_ships():
    library = shipped("python3-randomd")
    modules = {module_name(p) for p in library if p.endswith(".py")}
    outside = {
        (path, imported)
        for path in library if path.endswith(".py")
        for imported in imported_modules(path)
        if imported not in modules and imported.rpartition(".")[0] not in modules - {"randomd"}
    }
    assert outside == set(), "library modules importing daemon modules"
