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
