"""The project's two commands stay in step: CI runs exactly the README's test command."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands():
    return re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.S)


def test_ci_runs_the_readme_test_command():
    build, test = readme_commands()[:2]
    assert "build_book.sh" in build, build
    pytest_command = test.split("&&")[-1].strip()
    assert pytest_command.startswith("python -m pytest"), test
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip().startswith("python -m pytest")]
    assert ci_lines == [pytest_command], (ci_lines, pytest_command)


def test_the_test_command_covers_the_package_doctests():
    pytest_command = readme_commands()[1]
    assert " flowbook " in pytest_command, pytest_command


def test_every_module_is_short_and_imports_at_the_top():
    """One standard for every module: at most 300 lines, imports at the top, one __all__."""
    problems = []
    for path in sorted((ROOT / "flowbook").rglob("*.py")):
        text = path.read_text()
        name = path.relative_to(ROOT)
        if len(text.splitlines()) > 300:
            problems.append(f"{name}: {len(text.splitlines())} lines (> 300)")
        if "noqa: E402" in text:
            problems.append(f"{name}: an import below the top of the module (noqa: E402)")
        if "__all__ +=" in text:
            problems.append(f"{name}: __all__ extended with += (one __all__ per module)")
        if re.search(r"#.*\bissue \d+", text, flags=re.I):
            problems.append(f"{name}: a comment that names an issue number (the layout records the design)")
    assert not problems, "\n".join(problems)
