"""toxfile.py: tox environments share torch and JAX by hard links, at the pinned
version only, dist-info last, never a donor's scripts."""

import importlib.util
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _toxfile(monkeypatch):
    if importlib.util.find_spec("tox") is None:  # the test env has no tox: its hook marker
        plugin = types.ModuleType("tox.plugin")
        plugin.impl = lambda f: f
        monkeypatch.setitem(sys.modules, "tox", types.ModuleType("tox"))
        monkeypatch.setitem(sys.modules, "tox.plugin", plugin)
    spec = importlib.util.spec_from_file_location("toxfile", ROOT / "toxfile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dist(site, name, version):
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (site / name).mkdir()
    (site / name / "__init__.py").write_text(f"version = {version!r}\n")
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "RECORD").write_text(
        f"{name}/__init__.py,,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n"
        f"../../../bin/{name}-script,,\n")


def test_the_pinned_torch_is_hard_linked_and_a_wrong_version_is_not(tmp_path, monkeypatch):
    toxfile = _toxfile(monkeypatch)
    wrong, donor, target = (tmp_path / n / "site-packages" for n in ("a", "b", "c"))
    target.mkdir(parents=True)
    _dist(wrong, "torch", "9.9.9")        # not the version constraints.txt pins
    _dist(donor, "torch", toxfile._pins()["torch"] + "+cpu")  # a local build: the pin holds
    _dist(donor, "scipy", "1.0.0")        # unpinned: any version shares
    linked = toxfile.share(target, [wrong, donor])
    assert sorted(n.split()[0] for n in linked) == ["scipy", "torch"]
    src, dst = donor / "torch" / "__init__.py", target / "torch" / "__init__.py"
    assert dst.read_text() == src.read_text() and dst.stat().st_ino == src.stat().st_ino
    assert not (tmp_path / "bin").exists()   # a donor's scripts name its own python
    assert toxfile.share(target, [donor]) == []  # installed already: nothing to do
