"""The one diff parser on real `git diff` output: names git quotes, spaces, renames, binaries."""

from __future__ import annotations

from pathlib import Path

from agent.diffs import parse_diff, patch_lines, unquote
from agent.review import review_diff
from evals.sample_repo import git
from tests.fake_github import commentable_lines, pull_files_from_git

TAB = "tab\tname.py"
NAMES = ["my file.py", TAB, "café.py"]


def _repo(tmp_path: Path) -> tuple[Path, str, str]:
    root = tmp_path / "r"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    for name in NAMES:
        (root / name).write_text("one\ntwo\nthree\n", encoding="utf-8")
    (root / "old.py").write_text("".join(f"line {n}\n" for n in range(1, 9)))
    (root / "gone.py").write_text("bye\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    base = git(root, "rev-parse", "HEAD").strip()
    for name in NAMES:
        (root / name).write_text("one\nNEW\ntwo\nthree\nLAST\n", encoding="utf-8")
    git(root, "mv", "old.py", "new.py")
    (root / "new.py").write_text("".join(f"line {n}\n" for n in range(1, 9)) + "line 9\n")
    git(root, "rm", "-q", "gone.py")
    (root / "blob.bin").write_bytes(b"\0\1\2")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "head")
    return root, base, git(root, "rev-parse", "HEAD").strip()


def test_real_git_diff_gives_clean_paths_and_added_lines(tmp_path):
    root, base, head = _repo(tmp_path)
    text = git(root, "diff", "--find-renames", base, head)
    # as git prints them: C-quoted, or with a tab after a name holding a space
    assert '"b/caf\\303\\251.py"' in text and '"b/tab\\tname.py"' in text and "+++ b/my file.py\t" in text
    files = {f.path: f for f in parse_diff(text)}
    for name in NAMES:
        assert files[name].status == "modified" and files[name].added == {2, 5}, name
        assert files[name].visible == {1, 2, 3, 4, 5}
    assert files["new.py"].status == "renamed" and files["new.py"].old_path == "old.py" and files["new.py"].added == {9}
    assert files["gone.py"].status == "deleted" and files["gone.py"].added == set()
    assert files["blob.bin"].status == "binary"
    assert sorted(files) == sorted([*NAMES, "new.py", "gone.py", "blob.bin"])
    assert "    2 +NEW" in files["café.py"].lines and "    1  one" in files["café.py"].lines


def test_review_reads_the_same_paths_whatever_the_users_diff_config(tmp_path):
    root, base, head = _repo(tmp_path)
    git(root, "config", "diff.noprefix", "true")
    git(root, "config", "diff.mnemonicPrefix", "true")
    files = {f.path: f.added for f in review_diff(root, base, head)}
    assert files["café.py"] == files[TAB] == files["my file.py"] == {2, 5}


def test_github_patches_give_the_commentable_lines(tmp_path):
    root, base, head = _repo(tmp_path)
    pulled = {f["filename"]: f["patch"] for f in pull_files_from_git(root, base, head)}
    patch = pulled["my file.py"]
    assert patch.startswith("@@")
    assert patch_lines(patch) == {1, 2, 3, 4, 5} == commentable_lines(patch)
    assert patch_lines("") == set() and patch_lines("not a diff at all") == set()


def test_unquote_undoes_gits_c_quoting():
    assert unquote('"caf\\303\\251.py"') == "café.py"
    assert unquote('"tab\\tname.py"') == TAB
    assert unquote('"a\\"b\\\\c"') == 'a"b\\c'
    assert unquote("plain name.py") == "plain name.py"
