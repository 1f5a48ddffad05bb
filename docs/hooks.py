"""MkDocs hooks (mkdocs.yml ``hooks:``): publish the committed figures with the site.

The figures live in the repository's ``figures/`` (next to their README, which ``figures.md``
includes); this adds every ``figures/*.png`` to the site as ``figures/NAME.png`` and appends to
the figures page one image per figure that ``figures/README.md`` lists, so a new figure appears
in the site as soon as it is listed there.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "figures"


def on_files(files, config):
    for png in sorted(FIGURES.glob("*.png")):
        files.append(File(f"figures/{png.name}", src_dir=str(ROOT), dest_dir=config["site_dir"],
                          use_directory_urls=config["use_directory_urls"]))
    return files


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri != "figures.md":
        return markdown
    listed = re.findall(r"^- `([^`]+\.png)`", (FIGURES / "README.md").read_text(), flags=re.M)
    gallery = ["", "## Gallery", ""]
    for name in listed:
        gallery += [f"### `{name}`", "", f"![{name}](figures/{name})", ""]
    return markdown + "\n".join(gallery)
