"""The worked example docs/examples/python_example.py runs top to bottom in its --quick mode
(tiny sizes) and writes its figures, so it cannot rot. Skipped without matplotlib (Debian
python3-matplotlib). Runs under pytest or as a script (tests/test_python.sh)."""
import os
import subprocess
import sys
import tempfile

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(SRC, "docs", "examples", "python_example.py")


def have_matplotlib():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


def test_example_quick():
    if not have_matplotlib():
        try:
            import pytest
        except ImportError:
            print("(skipped: matplotlib (Debian python3-matplotlib) is not installed)")
            return
        pytest.skip("matplotlib (Debian python3-matplotlib) is not installed")
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "figs")
        r = subprocess.run([sys.executable, SCRIPT, out, "--quick"], capture_output=True, text=True)
        assert r.returncode == 0, "python_example.py --quick failed:\n%s%s" % (r.stdout, r.stderr[-2000:])
        for f in ("maps.png", "corner.png"):
            with open(os.path.join(out, f), "rb") as g:
                head = g.read(8)
            assert head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(os.path.join(out, f)) > 10000, f
        for f in ("posterior/theta.npy", "posterior/maps.fits", "nuts/chain.npy", "obs_truth.fits"):
            assert os.path.exists(os.path.join(out, f)), f
        assert "diffusion  S_8" in r.stdout and "NUTS       S_8" in r.stdout, r.stdout


if __name__ == "__main__":
    import _runner
    _runner.main(globals())
