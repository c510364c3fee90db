"""``clinie --help`` answers at once: the command modules import spaCy,
torch, spacy-llm and medspaCy inside the commands, not at start-up."""
import subprocess
import sys
import time

HEAVY = ("spacy", "thinc", "torch", "transformers", "spacy_llm", "medspacy", "sklearn", "ray", "flask")


def test_cli_start_up_imports_nothing_heavy():
    code = (
        "import sys\n"
        "from spacy_clinie.cli import app\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"imported at start-up: {out.stdout.strip()}"


def test_clinie_help_is_fast():
    """Under 1 s on a quiet machine; the bound is generous because CI and
    this machine share their cores with training jobs. Best of three runs."""
    times = []
    for _ in range(3):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "spacy_clinie", "--help"], capture_output=True, text=True, timeout=120)
        times.append(time.perf_counter() - start)
        assert out.returncode == 0, out.stderr
        assert "pipe" in out.stdout and "convert" in out.stdout
    assert min(times) < 3.0, f"clinie --help took {min(times):.2f} s at best ({[round(t, 2) for t in times]})"
