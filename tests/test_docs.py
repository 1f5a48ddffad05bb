"""The documentation site (mkdocs.yml, docs/) builds with ``mkdocs build --strict``: every page,
the API reference generated from the docstrings, and the example notebooks executed on a CPU.

The build runs once per session (about 1-2 minutes on 2 cores, most of it executing the
notebooks) in a temporary directory, with this checkout first on the path.
"""

from __future__ import annotations

import html
import importlib
import inspect
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "docs" / "examples").glob("*.ipynb"))
# API page (under the site) -> modules documented on it.
API_PAGES = {
    "api/jaxlmg/index.html": "jaxlmg",
    "api/models/index.html": "jaxlmg.models",
    "api/finite_size/index.html": "jaxlmg.finite_size",
    "api/sweeps/index.html": "jaxlmg.sweeps",
}
_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|data|mod|obj|exc|const):`~?([^`]+)`")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Build the site into a temporary directory; returns (site dir, build log, timing)."""
    tmp = tmp_path_factory.mktemp("docs")
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "XLA_FLAGS")}
    path = [str(REPO), *filter(None, [env.get("PYTHONPATH")])]
    env.update(PYTHONPATH=os.pathsep.join(path), JAX_PLATFORMS="cpu", NO_MKDOCS_2_WARNING="1")
    t0, cpu0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    # cwd = tmp: mkdocs-jupyter's cache of executed notebooks (.cache/) starts empty, so every
    # notebook really runs against this checkout.
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                        "-f", str(REPO / "mkdocs.yml"), "-d", str(tmp / "site")],
                       cwd=tmp, env=env, capture_output=True, text=True, timeout=900)
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime  # incl. the kernels
    timing = f"{time.perf_counter() - t0:.0f} s wall, {cpu:.0f} s CPU"
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-6000:]
    return tmp / "site", log, timing


def public_names(module_name: str) -> list[str]:
    """Public functions and classes of a module: ``__all__`` if it has one, else every name not
    starting with ``_`` (the ``from ._x import name as name`` re-exports of ``jaxlmg``)."""
    mod = importlib.import_module(module_name)
    names = getattr(mod, "__all__", None)
    if names is None:
        names = [n for n in vars(mod) if not n.startswith("_")]
    out = []
    for n in names:
        obj = getattr(mod, n)
        if inspect.ismodule(obj) or not callable(obj):
            continue  # submodules have their own page; constants need no docstring here
        out.append(n)
    return sorted(out)


def first_line(obj) -> str:
    doc = obj.__doc__ if inspect.isclass(obj) else inspect.getdoc(obj)
    assert doc and doc.strip(), f"{obj!r} has no docstring"
    line = inspect.cleandoc(doc).splitlines()[0]
    return normalize(_ROLE.sub(r"\1", line).replace("`", ""))


def normalize(text: str) -> str:
    # Whitespace is dropped altogether: rendering puts inline code in its own tags, so spaces
    # around it differ between the docstring and the page text; the characters must not.
    return "".join(text.split())


def section_text(raw: str, anchor: str) -> str:
    """Plain text of the API entry whose heading has id ``anchor`` (up to the next entry)."""
    i = raw.find(f'id="{anchor}"')
    assert i >= 0, f"{anchor} is missing from the API reference"
    j = raw.find('class="doc doc-heading"', i + len(anchor) + 10)
    chunk = raw[i: j if j > 0 else len(raw)]
    return normalize(html.unescape(re.sub(r"<[^>]+>", " ", chunk)))


@pytest.mark.slow
def test_site_builds_strictly(site):
    site_dir, log, timing = site
    # --strict already fails on any MkDocs warning; this also catches one logged without it.
    # (Jupyter kernels log their own "[IPKernelApp] WARNING | ..." lines: not MkDocs warnings.)
    assert not re.search(r"^WARNING\s+-", log, flags=re.M), log[-4000:]
    for page in ["index.html", "physics/index.html", "sweeps/index.html",
                 "benchmarks/index.html", "figures/index.html", *API_PAGES]:
        assert (site_dir / page).is_file(), page
    # The benchmarks page includes BENCHMARKS.md, the figures page figures/README.md and images.
    bench = (site_dir / "benchmarks" / "index.html").read_text(encoding="utf-8")
    assert "bench_canonical.py" in bench
    figs = (site_dir / "figures" / "index.html").read_text(encoding="utf-8")
    listed = re.findall(r"^- `([^`]+\.png)`", (REPO / "figures" / "README.md").read_text(),
                        flags=re.M)
    assert listed
    for name in listed:
        assert re.search(rf'<img [^>]*src="[^"]*{re.escape(name)}"', figs), name
        assert (site_dir / "figures" / name).stat().st_size > 10_000, name
    print(f"mkdocs build --strict: {timing}")


@pytest.mark.slow
@pytest.mark.parametrize("page,module", sorted(API_PAGES.items()))
def test_api_reference_lists_every_public_name_with_its_docstring(site, page, module):
    raw = (site[0] / page).read_text(encoding="utf-8")
    mod = importlib.import_module(module)
    names = public_names(module)
    assert names, module
    for n in names:
        text = section_text(raw, f"{module}.{n}")
        line = first_line(getattr(mod, n))
        assert line in text, f"{module}.{n}: first docstring line {line!r} not rendered"


@pytest.mark.slow
@pytest.mark.parametrize("nb", EXAMPLES, ids=lambda p: p.stem)
def test_example_notebooks_are_executed_in_the_build(site, nb):
    out = site[0] / "examples" / nb.stem / "index.html"
    raw = out.read_text(encoding="utf-8")
    code = ["".join(c["source"]) for c in json.loads(nb.read_text())["cells"]
            if c["cell_type"] == "code"]
    # Every code cell ran (an execution count per cell) and every figure was drawn (an output
    # image per plt.show()).
    counts = {int(x) for x in re.findall(r"In(?:&nbsp;|\s)\[(\d+)\]:", raw)}
    assert counts == set(range(1, len(code) + 1)), sorted(counts)
    n_figures = sum(c.count("plt.show()") for c in code)
    assert n_figures >= 1
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', raw)) == n_figures
    assert "Traceback" not in raw  # (the build also fails on any error: allow_errors: false)


def test_example_notebooks_are_committed_clean_and_listed_in_the_nav():
    assert len(EXAMPLES) >= 2
    nav = (REPO / "mkdocs.yml").read_text()
    for nb in EXAMPLES:
        cells = json.loads(nb.read_text())["cells"]
        for c in cells:
            if c["cell_type"] == "code":
                assert c["outputs"] == [] and c["execution_count"] is None, nb.name
        assert f"examples/{nb.name}" in nav, f"{nb.name} is not in the site's nav"


def test_api_pages_are_generated_not_hand_listed():
    # Each API page is one mkdocstrings directive for a whole module, so a new public name
    # appears by itself; the test above checks that it does.
    for page, module in API_PAGES.items():
        md = REPO / "docs" / Path(page).parent.with_suffix(".md")
        text = md.read_text()
        assert f"::: {module}\n" in text, md
        assert "members:" not in text, f"{md} lists members by hand"
