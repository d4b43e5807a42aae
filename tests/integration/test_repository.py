"""The repository itself: no secret is committed, and the scan that CI runs does catch one."""
import subprocess

from conftest import ROOT

SCAN = ROOT / "scripts" / "secret-scan"


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_this_repository_holds_no_secret():
    out = subprocess.run([str(SCAN)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_scan_fails_on_a_committed_key_and_on_a_tracked_env_file(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "settings.py").write_text('AWS_ACCESS_KEY_ID = "AKIA' + "Q" * 16 + '"\n')
    git(tmp_path, "add", "settings.py")
    out = subprocess.run([str(SCAN), str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 1 and "settings.py:1: AWS Access Key" in out.stdout

    (tmp_path / "settings.py").write_text("AWS_ACCESS_KEY_ID = None\n")
    (tmp_path / ".env").write_text("ADDRESS_API_KEY=placeholder\n")
    git(tmp_path, "add", "-f", "settings.py", ".env")
    out = subprocess.run([str(SCAN), str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 1 and "tracked .env files" in out.stdout

    git(tmp_path, "rm", "-q", "--cached", ".env")
    (tmp_path / ".env.example").write_text("ADDRESS_API_KEY=\n")
    git(tmp_path, "add", ".env.example")
    out = subprocess.run([str(SCAN), str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_the_scan_fails_on_a_committed_tollgate_key(tmp_path):
    git(tmp_path, "init", "-q")
    key = "tg_live_" + "Ab3" * 4 + "_" + "Zx9" * 9 + "Q"  # the shape of a real key: 12-char id, 28 after it
    (tmp_path / "client.py").write_text(f'KEY = "{key}"\n')
    git(tmp_path, "add", "client.py")
    out = subprocess.run([str(SCAN), str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 1 and "client.py:1" in out.stdout and key not in out.stdout


def test_env_files_are_ignored_and_examples_ship_beside_configs():
    ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "examples/address-validation/.env"])
    assert ignored.returncode == 0
    kept = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "examples/address-validation/.env.example"])
    assert kept.returncode == 1
    examples = {"address-validation": ["ADDRESS_API_KEY", "PAGE_TOKEN_KEY", "CHALLENGE_KEY"],
                "two-step-signup": ["ADDRESS_API_KEY", "PAGE_TOKEN_KEY", "CHALLENGE_KEY", "VERIFY_KEY", "ADDRESS_HASH_KEY"]}
    for folder, names in examples.items():
        example = (ROOT / "examples" / folder / ".env.example").read_text()
        config = (ROOT / "examples" / folder / "tollgate.yaml").read_text()
        for name in names:
            assert f"{name}: env:{name}" in config and f"\n{name}=\n" in example, (folder, name)
