"""The house rules of docs/architecture.md, checked on the package's own source:

(a) no file over MAX_LINES lines unless listed below with its reason;
(b) no import cycle among minvert's modules, counting imports inside functions;
(c) minvert/layers/*.py (the readable layers) use the fast engine (minvert.layers.fast) only in
    their dispatch lines: one import of it, and every other mention on a line marked
    ``# fast path``;
(d) no function over MAX_FUNCTION_LINES lines unless listed below with its reason;
(e) imports inside functions only in minvert/cli/ (the command loads the library lazily) and of
    the optional modules (torch, cupy); anywhere else they hide the dependency graph;
(f) imports go only downward through LEVELS, the layers of docs/architecture.md (a module may
    import its own level or below; the package root, minvert/__init__.py, sits on top).

Each checker takes the package folder, so the tests at the bottom can show that it catches a
synthetic offender in a throwaway tree.
"""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "minvert"
MAX_LINES = 300
MAX_FUNCTION_LINES = 80  # from the def line to the last line, docstring included
FAST_MARK = "# fast path"

# Files allowed over MAX_LINES, with the reason (paths relative to minvert/).
LONG_FILES = {
}

# Functions allowed over MAX_FUNCTION_LINES ("path::qualified name"), with the reason.
LONG_FUNCTIONS = {}

# (e) Files allowed to import inside functions besides cli/, with the reason.
LAZY_IMPORT_FILES = {
    "__init__.py": "the package root is imported before every `minvert` command; importing the "
                   "weight readers at its top would load NumPy and h5py for `minvert --help`",
}
# torch and cupy are optional; h5py and scipy are imported where they are used because the
# parser imports transform/ and reconstruct/, and `minvert --help` must load neither
# (tests/test_cli.py checks it).
OPTIONAL_MODULES = ("torch", "cupy", "h5py", "scipy")

# (f) Each top-level module or package of minvert/ and its level, as drawn in docs/architecture.md.
LEVELS = {
    "errors": 0, "version": 0, "bounds": 0, "text": 0, "regular_files": 0,
    "backend": 1, "files": 1,
    "gradcheck": 2, "gradcheck_causes": 2, "metrics": 2, "labels": 2, "images": 2, "plots": 2, "datasets": 2,
    "layers": 3,
    "nets": 4, "optim": 4, "gradcheck_catalogue": 4,
    "weights": 5,
    "training": 6, "classifier_training": 6, "classify": 6, "transform": 6,
    "reconstruct": 7,
    "exercises": 8, "bench": 8, "demo": 8,
    "cli": 9, "__main__": 9,
}


# -- the checkers ------------------------------------------------------------------------------

def python_files(package):
    return sorted(p for p in package.rglob("*.py") if "__pycache__" not in p.parts)


def relative(package, path):
    return path.relative_to(package).as_posix()


def module_name(package, path):
    parts = [package.name, *path.relative_to(package).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def long_files(package, allowed):
    """{relative path: line count} of the files over MAX_LINES that ``allowed`` does not name."""
    counts = {relative(package, p): len(p.read_text().splitlines()) for p in python_files(package)}
    return {f: n for f, n in counts.items() if n > MAX_LINES and f not in allowed}


def stale_entries(package, allowed):
    """Names in ``allowed`` that no longer are over the limit (or no longer exist)."""
    counts = {relative(package, p): len(p.read_text().splitlines()) for p in python_files(package)}
    return sorted(f for f in allowed if counts.get(f, 0) <= MAX_LINES)


def _imports(package, path):
    """(node, [absolute module names]) for every import statement of a file, at any depth.

    ``from pkg import name`` imports the submodule pkg.name when that is a module of the tree,
    else pkg itself."""
    modules = {module_name(package, p) for p in python_files(package)}
    here = module_name(package, path)
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield node, [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source
                       for a in node.names]
            yield node, targets


def import_graph(package):
    """{module: set of minvert modules it imports anywhere in its file}."""
    graph = {}
    for path in python_files(package):
        name = module_name(package, path)
        edges = {t for _, targets in _imports(package, path) for t in targets}
        graph[name] = {t for t in edges if t.split(".")[0] == package.name and t != name}
    return graph


def import_cycles(package):
    """The strongly connected components with more than one module (Tarjan), sorted."""
    graph = import_graph(package)
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # recursion depth is bounded by the number of modules (~100)
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue  # a name that is not a module of the tree (a typo shows up elsewhere)
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(cycles)


def fast_engine_misuse(package):
    """["path:line: why"] for layers/*.py lines that reach into the fast engine outside the
    dispatch: more than one import of it, or a use of a name it bound outside an
    ``if fast.enabled():`` block on a line without FAST_MARK."""
    fast = f"{package.name}.layers.fast"
    problems = []
    for path in sorted((package / "layers").glob("*.py")):
        lines = path.read_text().splitlines()
        bound, import_lines = set(), []
        for node, targets in _imports(package, path):
            from_layers = (isinstance(node, ast.ImportFrom)
                           and targets and all(t == f"{package.name}.layers" for t in targets))
            hits = [(t, a) for t, a in zip(targets, node.names)
                    if t == fast or t.startswith(fast + ".")
                    or (from_layers and a.name == "fast")]
            if not hits:
                continue
            import_lines.append(node.lineno)
            for _, alias in hits:
                bound.add((alias.asname or alias.name).split(".")[0])
        where = relative(package, path)
        if len(import_lines) > 1:
            problems.append(f"{where}:{import_lines[1]}: a second import of the fast engine "
                            f"(the first is line {import_lines[0]}); import it once")
        tree = ast.parse("\n".join(lines), str(path))
        dispatch = set()  # the lines of each `if fast.enabled():` and its body
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and isinstance(node.test, ast.Call) \
                    and isinstance(node.test.func, ast.Attribute) and node.test.func.attr == "enabled" \
                    and isinstance(node.test.func.value, ast.Name) and node.test.func.value.id in bound:
                dispatch.update(range(node.lineno, node.body[-1].end_lineno + 1))
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in bound and node.lineno not in dispatch \
                    and FAST_MARK not in lines[node.lineno - 1]:
                problems.append(f"{where}:{node.lineno}: uses the fast engine ({node.id}) on a "
                                f"line without '{FAST_MARK}'")
    return problems


def long_functions(package, allowed):
    """{"path::qualified name": lines} of the functions over MAX_FUNCTION_LINES not in ``allowed``."""
    found = {}
    for path in python_files(package):
        where = relative(package, path)

        def visit(node, prefix):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    name = f"{prefix}{child.name}"
                    if not isinstance(child, ast.ClassDef):
                        n = child.end_lineno - child.lineno + 1
                        if n > MAX_FUNCTION_LINES and f"{where}::{name}" not in allowed:
                            found[f"{where}::{name}"] = n
                    visit(child, name + ".")
        visit(ast.parse(path.read_text(), str(path)), "")
    return found


def upward_imports(package, levels):
    """["importer -> imported"] for imports to a higher level, and ["top: no level"] for top-level
    modules ``levels`` does not place."""
    def level(module):
        parts = module.split(".")
        return float("inf") if len(parts) == 1 else levels.get(parts[1])
    graph = import_graph(package)
    unplaced = sorted({m.split(".")[1] for m in graph if len(m.split(".")) > 1} - set(levels))
    found = [f"{top}: no level" for top in unplaced]
    for importer, imported in sorted((a, b) for a, bs in graph.items() for b in bs):
        if None not in (level(importer), level(imported)) and level(imported) > level(importer):
            found.append(f"{importer} -> {imported}")
    return found


def imports_inside_functions(package, allowed):
    """["path:line module"] of imports inside functions, outside cli/ and ``allowed`` files,
    of anything but OPTIONAL_MODULES."""
    found = []
    for path in python_files(package):
        where = relative(package, path)
        if where.startswith("cli/") or where in allowed:
            continue
        for function in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = ["." * node.level + (node.module or "")]
                else:
                    continue
                found += [f"{where}:{node.lineno} {n}" for n in names
                          if n.split(".")[0] not in OPTIONAL_MODULES]
    return sorted(set(found))


# -- the package ------------------------------------------------------------------------------

def test_no_file_over_the_limit_unless_listed_with_a_reason():
    over = long_files(PACKAGE, LONG_FILES)
    assert not over, (f"over {MAX_LINES} lines: {over}; split along a natural seam, or list the "
                      "file in LONG_FILES with the reason it stays whole")
    assert len(LONG_FILES) <= 3, "at most three files may stay over the limit"
    assert all(reason.strip() for reason in LONG_FILES.values())


def test_size_lists_name_only_files_still_over_the_limit():
    stale = stale_entries(PACKAGE, LONG_FILES)
    assert not stale, f"no longer over {MAX_LINES} lines (or gone): {stale}; remove them from the lists"


def test_no_import_cycles_even_through_imports_inside_functions():
    assert import_cycles(PACKAGE) == []


def test_imports_go_only_downward_through_the_levels():
    assert upward_imports(PACKAGE, LEVELS) == []


def test_readable_layers_reach_the_fast_engine_only_in_their_dispatch_lines():
    assert fast_engine_misuse(PACKAGE) == []


def test_no_function_over_the_limit_unless_listed_with_a_reason():
    allowed = LONG_FUNCTIONS
    over = long_functions(PACKAGE, allowed)
    assert not over, (f"functions over {MAX_FUNCTION_LINES} lines: {over}; split them, or list "
                      "them in LONG_FUNCTIONS with the reason")
    listed = {k for k in allowed if k.split("::")[0] in {relative(PACKAGE, p) for p in python_files(PACKAGE)}}
    still_long = set(long_functions(PACKAGE, {}))
    assert listed <= still_long, f"listed but no longer long (or gone): {sorted(listed - still_long)}"


def test_imports_inside_functions_only_in_the_cli_and_for_optional_modules():
    found = imports_inside_functions(PACKAGE, LAZY_IMPORT_FILES)
    assert not found, f"imports inside functions: {found}; import at the top of the module"
    importing = {entry.split(":")[0] for entry in imports_inside_functions(PACKAGE, {})}
    stale = sorted(set(LAZY_IMPORT_FILES) - importing)
    assert not stale, f"listed but importing nothing inside functions (or gone): {stale}"


# -- each checker catches what it is for ------------------------------------------------------

def _tree(tmp_path, files):
    package = tmp_path / "minvert"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package


def test_checker_finds_a_long_file_and_a_stale_entry(tmp_path):
    package = _tree(tmp_path, {"__init__.py": "", "big.py": "x = 1\n" * (MAX_LINES + 1),
                               "small.py": "x = 1\n" * MAX_LINES})
    assert long_files(package, {}) == {"big.py": MAX_LINES + 1}
    assert long_files(package, {"big.py": "why"}) == {}
    assert stale_entries(package, {"big.py": "why", "small.py": "why", "gone.py": "why"}) == \
        ["gone.py", "small.py"]


def test_checker_finds_a_cycle_closed_inside_a_function(tmp_path):
    package = _tree(tmp_path, {
        "__init__.py": "",
        "data/__init__.py": "from .textures import CLASSES\n",
        "data/textures.py": "CLASSES = ()\n",
        "data/shapes.py": "from .textures import CLASSES\n\n\ndef kind():\n    from . import registry\n",
        "data/registry.py": "from minvert.data import shapes\n",
        "below.py": "from .data import textures\n",
    })
    assert import_graph(package)["minvert.data.registry"] == {"minvert.data.shapes"}
    assert import_cycles(package) == [["minvert.data.registry", "minvert.data.shapes"]]
    (package / "data/shapes.py").write_text("from .textures import CLASSES\n")
    assert import_cycles(package) == []


def test_checker_resolves_relative_imports_from_packages_and_modules(tmp_path):
    package = _tree(tmp_path, {"__init__.py": "from . import a\n", "a.py": "from .b import f\n",
                               "b.py": "import minvert.c.d\n", "c/__init__.py": "",
                               "c/d.py": "from .. import a\nfrom ..b import f as g\n"})
    graph = import_graph(package)
    assert graph["minvert"] == {"minvert.a"}
    assert graph["minvert.b"] == {"minvert.c.d"}
    assert graph["minvert.c.d"] == {"minvert.a", "minvert.b"}
    assert import_cycles(package) == [["minvert.a", "minvert.b", "minvert.c.d"]]


def test_checker_finds_fast_engine_use_outside_the_dispatch_lines(tmp_path):
    dispatch = ("from . import fast\n\n\nclass Conv2D:\n    def forward(self, x):\n"
                "        return fast.conv(x) if fast.enabled() else x  # fast path\n")
    package = _tree(tmp_path, {"__init__.py": "", "layers/__init__.py": "",
                               "layers/fast/__init__.py": "", "layers/conv.py": dispatch})
    assert fast_engine_misuse(package) == []
    block = ("from . import fast\n\n\nclass ReLU:\n    def forward(self, x):\n"
             "        if fast.enabled():  # the same values, faster\n"
             "            return fast.relu(x)\n        return x\n")
    (package / "layers/activation.py").write_text(block)
    assert fast_engine_misuse(package) == []
    (package / "layers/activation.py").write_text(block + "        fast.relu(x)\n")
    (problem,) = fast_engine_misuse(package)
    assert problem.startswith("layers/activation.py:9:")
    (package / "layers/activation.py").unlink()
    (package / "layers/conv.py").write_text(dispatch + "\n\ndef helper(x):\n    return fast.conv(x)\n")
    (problem,) = fast_engine_misuse(package)
    assert problem.startswith("layers/conv.py:10:")
    (package / "layers/pool.py").write_text("from .fast.pool import pool_fast\nfrom minvert.layers.fast "
                                            "import im2col\n\n\ndef pool(x):\n    return x\n")
    problems = fast_engine_misuse(package)
    assert any(p.startswith("layers/pool.py:2: a second import") for p in problems)
    (package / "layers/pool.py").write_text("def pool(x):\n    from .fast.pool import pool_fast\n"
                                            "    return pool_fast(x)\n")
    assert [p.split(":")[:2] for p in fast_engine_misuse(package)][-1] == ["layers/pool.py", "3"]


def test_checker_finds_a_long_function_and_names_it(tmp_path):
    def body(n, indent):
        return "".join(f"{indent}x{i} = {i}\n" for i in range(n))
    package = _tree(tmp_path, {
        "__init__.py": "",
        "m.py": (f"class A:\n    def run(self):\n{body(MAX_FUNCTION_LINES, ' ' * 8)}"
                 "\n\ndef short():\n    pass\n"),
        "n.py": f"def run():\n{body(MAX_FUNCTION_LINES - 1, ' ' * 4)}",  # exactly at the limit
    })
    assert long_functions(package, {}) == {"m.py::A.run": MAX_FUNCTION_LINES + 1}
    assert long_functions(package, {"m.py::A.run": "why"}) == {}


def test_checker_finds_an_import_inside_a_function_outside_the_cli(tmp_path):
    package = _tree(tmp_path, {
        "__init__.py": "",
        "cli/main.py": "def run():\n    from ..library import go\n",
        "library.py": "def go():\n    import torch\n    import cupy.cuda\n",
        "other.py": "import json\n\n\ndef f():\n    import PIL\n    from .library import go\n",
    })
    assert imports_inside_functions(package, {}) == ["other.py:5 PIL", "other.py:6 .library"]
    assert imports_inside_functions(package, {"other.py": "why"}) == []


def test_checker_finds_an_upward_import_and_an_unplaced_module(tmp_path):
    package = _tree(tmp_path, {"__init__.py": "from .low import x\n", "low.py": "from .high import y\n",
                               "high.py": "from .low import x\n", "new.py": ""})
    assert upward_imports(package, {"low": 0, "high": 1, "new": 1}) == ["minvert.low -> minvert.high"]
    assert upward_imports(package, {"low": 1, "high": 1}) == ["new: no level"]
