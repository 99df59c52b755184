"""Static localization on a flask-shaped repository: stdlib imports, fixtures named like the package,
examples, a method reached through an attribute, the target test's source; and no wasted lines."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from agent.summary import summarise

FILES = {
    "pyproject.toml": "[project]\nname = 'flaskish'\n",
    "src/flaskish/__init__.py": "from .app import App as App\n",
    "src/flaskish/app.py": ("from .config import Config\n\n\nclass App:\n    def __init__(self, name):\n"
                            "        self.config = Config()\n"),
    "src/flaskish/config.py": ("import typing as t\n\n\nclass Config(dict):\n    def from_object(self, obj):\n"
                               "        pass\n\n    def from_pyfile(self, filename):\n"
                               "        return self.from_object(filename)\n\n"
                               "    @t.overload\n    def get_int(self, key: str) -> int: ...\n"
                               "    @t.overload\n    def get_int(self, key: str, default: int) -> int: ...\n"
                               "    def get_int(self, key, default=0):\n        return int(self.get(key, default))\n"),
    "src/flaskish/json/__init__.py": ("def dumps(obj):\n    return str(obj)\n\n\ndef loads(s):\n    return s\n"),
    "src/flaskish/helpers.py": "def helper():\n    return 1\n",
    "tests/test_apps/cliapp/inner/flaskish.py": "from flaskish import App\n\napp = App(__name__)\n",
    "examples/tutorial/tests/test_factory.py": "def test_config():\n    pass\n",
    "examples/tutorial/app.py": "import flaskish\n\n\ndef from_pyfile_demo():\n    pass\n",
    "tests/test_config.py": ("import json\n\nimport flaskish\n\n\ndef common(app):\n"
                             "    assert app.config['A'] == 1\n\n\n"
                             "def test_config_from_pyfile():\n    app = flaskish.App(__name__)\n"
                             "    app.config.from_pyfile('x.py')\n    common(app)\n\n\n"
                             "def test_other():\n    assert json.dumps(1)\n"),
}


def make(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "init"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, env=env, capture_output=True)
    return root


TARGET = "tests/test_config.py::test_config_from_pyfile"


def test_stdlib_import_and_same_named_fixture_do_not_seed(tmp_path: Path) -> None:
    root = make(tmp_path / "repo", FILES)
    _, scope, _ = summarise(root, [TARGET], [], 2048, task_text=TARGET, cache_dir=tmp_path / "c")
    assert "src/flaskish/json/__init__.py" not in scope.seed_files  # `import json` is the stdlib's
    assert "tests/test_apps/cliapp/inner/flaskish.py" not in scope.seed_files  # `import flaskish` is src/
    assert "src/flaskish/__init__.py" in scope.seed_files
    assert "examples/tutorial/tests/test_factory.py" not in scope.seed_files  # `test_config` names a test
    # `app.config.from_pyfile(...)`: the file defining the method the test calls through an attribute
    assert "src/flaskish/config.py" in scope.seed_files


def test_target_test_source_and_definitions_shown_once(tmp_path: Path) -> None:
    root = make(tmp_path / "repo", FILES)
    _, _, summary = summarise(root, [TARGET], [], 2048, task_text=TARGET, cache_dir=tmp_path / "c")
    task = summary.task_part
    assert "## Target test tests/test_config.py:10\ndef test_config_from_pyfile():" in task
    assert "    app.config.from_pyfile('x.py')\n" in task
    examples = task.find("examples/")
    assert task.index("## src/flaskish/config.py") < (examples if examples >= 0 else len(task))
    text = summary.text
    assert text.count("Repository map") == 1 and "(in the map above)" not in text and "\n\n\n" not in text
    assert text.count("def get_int(") == 1  # three @overload-style definitions: one line
    assert "get_int, get_int" not in text


def test_prompt_template_has_no_second_heading() -> None:
    template = (Path(__file__).resolve().parents[1] / "prompts" / "repo_summary.md").read_text()
    assert "# Repository map" not in template  # the summary brings its own


def test_version_line_marked_do_not_edit_is_still_indexed(tmp_path: Path) -> None:
    # tomli's __init__.py: `__version__ = "1.2.1"  # DO NOT EDIT THIS LINE MANUALLY`; it is hand-written code
    root = make(tmp_path / "repo", {
        "tomlish/__init__.py": ('__version__ = "1.2.1"  # DO NOT EDIT THIS LINE MANUALLY. LET bump2version DO IT\n\n'
                                "from tomlish._parser import loads\n"),
        "tomlish/_parser.py": "def loads(s):\n    return {}\n",
        "gen.py": "# Code generated by protoc. DO NOT EDIT.\nX = 1\n",
        "tests/test_x.py": "import tomlish\n\n\ndef test_name():\n    assert tomlish.loads.__module__ == 'tomlish'\n",
    })
    index, scope, _ = summarise(root, ["tests/test_x.py::test_name"], [], 1024, cache_dir=tmp_path / "c")
    assert "tomlish/__init__.py" in index.files and "gen.py" not in index.files
    assert "tomlish/__init__.py" in scope.seed_files
