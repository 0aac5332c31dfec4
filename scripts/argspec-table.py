#!/usr/bin/env python3
"""Write (or check) each role README's variable table from its meta/argument_specs.yml.

    scripts/argspec-table.py roles/redis/ [roles/...]          rewrite the tables
    scripts/argspec-table.py --check roles/*/                  fail if a table drifted

The table sits between `<!-- BEGIN ARGSPEC TABLE -->` and `<!-- END ARGSPEC TABLE -->` in the
role's README.md; prose above it is the author's, the table is generated (as dev-sec does with aar-doc).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

BEGIN = "<!-- BEGIN ARGSPEC TABLE -->"
END = "<!-- END ARGSPEC TABLE -->"


def _cell(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    text = text.removesuffix("...").strip()
    return f"`{text}`".replace("|", "\\|")


def _type(spec: dict[str, Any]) -> str:
    kind = spec.get("type", "str")
    if kind == "list" and "elements" in spec:
        kind = f"list of {spec['elements']}"
    return kind


def rows(options: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for name, spec in options.items():
        spec = spec or {}
        description = spec.get("description", "")
        if isinstance(description, list):
            description = " ".join(description)
        description = " ".join(str(description).split()).replace("|", "\\|")
        if "choices" in spec:
            description += " Choices: " + ", ".join(f"`{c}`" for c in spec["choices"]) + "."
        if spec.get("no_log"):
            description += " Secret (no_log): keep it in Vault."
        default = (
            "required" if spec.get("required") else (_cell(spec["default"]) if "default" in spec else "")
        )
        out.append(f"| `{prefix}{name}` | {_type(spec)} | {default} | {description} |")
        if "options" in spec:
            sub = f"{prefix}{name}[]." if spec.get("type") == "list" else f"{prefix}{name}."
            out.extend(rows(spec["options"], sub))
    return out


def table(role: Path) -> str:
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
    lines: list[str] = []
    for entry, spec in specs["argument_specs"].items():
        lines.append(f"Entry point `{entry}`: {spec.get('short_description', '')}".rstrip())
        lines.append("")
        lines.append("| Variable | Type | Default | Description |")
        lines.append("| --- | --- | --- | --- |")
        lines.extend(rows(spec.get("options", {})))
        lines.append("")
    return "\n".join(lines)


def render(readme: str, generated: str) -> str:
    if BEGIN not in readme or END not in readme:
        raise ValueError(f"markers {BEGIN} / {END} missing")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{generated}\n{END}{tail}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="report drift instead of rewriting")
    parser.add_argument("roles", nargs="+", type=Path)
    args = parser.parse_args(argv)
    failures = 0
    for role in args.roles:
        readme_path = role / "README.md"
        if not (role / "meta" / "argument_specs.yml").is_file() or not readme_path.is_file():
            print(f"{role}: needs meta/argument_specs.yml and README.md", file=sys.stderr)
            failures += 1
            continue
        readme = readme_path.read_text(encoding="utf-8")
        try:
            wanted = render(readme, table(role))
        except ValueError as error:
            print(f"{readme_path}: {error}", file=sys.stderr)
            failures += 1
            continue
        if wanted == readme:
            continue
        if args.check:
            print(
                f"{readme_path}: variable table is out of date; run scripts/argspec-table.py {role}",
                file=sys.stderr,
            )
            failures += 1
        else:
            readme_path.write_text(wanted, encoding="utf-8")
            print(f"{readme_path}: table written")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
