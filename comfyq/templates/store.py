"""The template store: every version under ``templates_wf/``, loaded and checked once at start-up."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import TemplateError, UnknownTemplate
from .loader import load_version
from .template import Template

logger = logging.getLogger(__name__)


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def scan(root: str | Path, catalogue: Mapping[str, Any] | None = None) -> tuple[list[Template], list[TemplateError]]:
    """Load every version under root; return the good templates and every problem found."""
    base = Path(root)
    if not base.is_dir():
        return [], [TemplateError(str(base), "no such templates directory")]
    templates: list[Template] = []
    problems: list[TemplateError] = []
    seen: dict[tuple[str, int], str] = {}
    for spec in sorted(p for p in base.rglob("spec.yaml") if _visible(p, base)):
        shown = str(base / spec.parent.relative_to(base))
        template, found = load_version(spec.parent, shown, catalogue)
        problems += found
        if template is None:
            continue
        key = (template.name, template.version)
        if key in seen:
            problems.append(TemplateError(f"{shown}/spec.yaml", f"{template.ref} is already defined in {seen[key]}"))
            continue
        seen[key] = f"{shown}/spec.yaml"
        templates.append(template)
    for graph in sorted(p for p in base.rglob("workflow.json") if _visible(p, base)):
        if not (graph.parent / "spec.yaml").is_file():
            problems.append(TemplateError(str(base / graph.relative_to(base)),
                                          "no spec.yaml beside it, so it is no template; add one"))
    return templates, problems


def check_templates(root: str | Path, catalogue: Mapping[str, Any] | None = None) -> list[str]:
    """Return every problem of the templates under root as ``path: reason``; empty when all are good."""
    return [str(problem) for problem in scan(root, catalogue)[1]]


class TemplateStore:
    """Every template version by name, newest chosen when a request names no version."""

    def __init__(self, templates: Iterable[Template]) -> None:
        self._versions: dict[str, dict[int, Template]] = {}
        for template in templates:
            self._versions.setdefault(template.name, {})[template.version] = template

    @classmethod
    def load(cls, root: str | Path, catalogue: Mapping[str, Any] | None = None) -> "TemplateStore":
        """Load and check every template; raise TemplateError naming the first broken file."""
        templates, problems = scan(root, catalogue)
        for problem in problems:
            logger.error("broken template: %s", problem)
        if problems:
            first = problems[0]
            more = f" (and {len(problems) - 1} more; run `comfyq templates check`)" if len(problems) > 1 else ""
            raise TemplateError(first.path, first.reason + more)
        return cls(templates)

    def get(self, ref: Any) -> Template:
        """Return ``name`` (its newest version) or ``name@version``; raise UnknownTemplate."""
        if not isinstance(ref, str) or not ref:
            raise UnknownTemplate.for_ref(ref, "give a template name, e.g. 'txt2img' or 'txt2img@1'")
        name, at, written = ref.partition("@")
        versions = self._versions.get(name)
        if not versions:
            known = ", ".join(sorted(self._versions)) or "none"
            raise UnknownTemplate.for_ref(ref, f"no such template; known templates: {known}")
        listed = ", ".join(map(str, sorted(versions)))
        if not at:
            return versions[max(versions)]
        if not (written.isascii() and written.isdigit()) or int(written) not in versions:
            raise UnknownTemplate.for_ref(ref, f"no version {written!r} of {name}; versions: {listed}")
        return versions[int(written)]

    def all(self) -> list[Template]:
        """Return every version, by name then version."""
        return [self._versions[n][v] for n in sorted(self._versions) for v in sorted(self._versions[n])]

    def latest(self) -> list[Template]:
        """Return the newest version of each template, by name."""
        return [self._versions[n][max(self._versions[n])] for n in sorted(self._versions)]
