"""Issue 17 item 1: the package runs installed, not only from the checkout.

Builds the wheel, installs it (no dependencies, offline) into a fresh virtual environment whose
dependencies come from this environment's site-packages (added as a plain path, so the editable
install of the checkout stays out), and runs the packaged preset from an empty directory.
"""

import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_runs_the_packaged_quickstart_from_any_directory(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                    str(ROOT)], check=True, capture_output=True)
    wheel = next(wheels.glob("synthclone-*.whl"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run([str(python), "-c", "import synthclone; print(synthclone.__file__)"], cwd=work, check=True,
                           capture_output=True, text=True).stdout.strip()
    assert where.startswith(str(env_dir)), where  # the installed copy, not the checkout
    done = subprocess.run([str(env_dir / "bin" / "synthclone"), "run", "quickstart", "--dry-run", "--out", "run"],
                          cwd=work, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "config OK: 'quickstart'" in done.stdout and "85 stages" in done.stdout
    assert not (work / "configs").exists()
