"""Prompt templates, shipped as package data; read them with importlib.resources.

Each template is a Markdown file that starts with a small header, then `---`, then the text:

    version: 1
    role: user            # "system" or "user": where the text goes in a request
    purpose: one line saying when it is sent
    ---
    text with ${placeholders}

Placeholders use string.Template syntax (`${name}`; a literal dollar is `$$`). Rendering with a
placeholder missing raises PromptError naming the template and the variable, never a half-filled
prompt. The version travels with every rendered prompt so a run's record says which wording it used.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import cache
from importlib import resources

TEMPLATE_NAMES = (
    "system", "context_hardware", "context_code", "plan", "generate", "correct", "measure_feedback",
    "continue", "judge_system", "judge",
)


class PromptError(Exception):
    """A template that cannot be read or rendered, worded for the user."""


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: str
    role: str
    purpose: str
    body: str

    @property
    def variables(self) -> list[str]:
        """The placeholders the body uses, in order of first use."""
        seen: list[str] = []
        for match in string.Template.pattern.finditer(self.body):
            name = match.group("named") or match.group("braced")
            if name and name not in seen:
                seen.append(name)
        return seen

    def render(self, values: dict[str, str]) -> str:
        missing = [v for v in self.variables if v not in values]
        if missing:
            names = ", ".join("${" + m + "}" for m in missing)
            raise PromptError(f"prompt template {self.name}.md needs {names}, which the caller did not "
                              "provide")
        try:
            return string.Template(self.body).substitute(values)
        except ValueError as err:  # a stray `$` in the template
            raise PromptError(f"prompt template {self.name}.md has a malformed placeholder ({err}); "
                              "write a literal dollar as $$") from None


@cache
def load_template(name: str) -> PromptTemplate:
    if name not in TEMPLATE_NAMES:
        raise PromptError(f"no prompt template named {name!r}; the templates are {', '.join(TEMPLATE_NAMES)}")
    try:
        text = resources.files(__name__).joinpath(f"{name}.md").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromptError(f"prompt template {name}.md is missing from the installed package: reinstall "
                          "wattson") from None
    return parse_template(name, text)


def parse_template(name: str, text: str) -> PromptTemplate:
    header, separator, body = text.partition("\n---\n")
    if not separator:
        raise PromptError(f"prompt template {name}.md has no `---` line after its header")
    fields: dict[str, str] = {}
    for line in header.splitlines():
        key, colon, value = line.partition(":")
        if colon:
            fields[key.strip()] = value.strip()
    if not fields.get("version"):
        raise PromptError(f"prompt template {name}.md must start with a `version:` line")
    role = fields.get("role", "user")
    if role not in ("system", "user"):
        raise PromptError(f"prompt template {name}.md: role must be system or user, got {role!r}")
    return PromptTemplate(name=name, version=fields["version"], role=role, purpose=fields.get("purpose", ""),
                          body=body.strip("\n") + "\n")


def all_templates() -> list[PromptTemplate]:
    return [load_template(name) for name in TEMPLATE_NAMES]
