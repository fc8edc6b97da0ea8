"""tox's inline plugin: the environments that install torch and JAX share one copy.

torch, jaxlib and SciPy take ~1.2 GB and a minute or more to unpack, and py, fuzz,
gate and bench all need them. Before an environment installs, the files of each
of these distributions that another environment of this project already holds,
at the version constraints.txt pins, are hard-linked into it (one copy on disk;
seconds instead of minutes); pip then finds them installed and moves on, and
installs whatever else is missing as usual. No link is made across devices or
Python versions; without a donor, nothing changes. A linked file is the donor's:
edit an installed torch in one environment and the others see it (reinstalling
replaces the links, not the files behind them).
"""

import os
import re
from importlib import metadata
from pathlib import Path

from packaging.specifiers import SpecifierSet
from tox.plugin import impl

SHARED = ("torch", "jaxlib", "jax", "scipy", "numpy")
PINS = Path(__file__).with_name("constraints.txt")


def _pins():
    pins = {}
    for line in PINS.read_text().splitlines() if PINS.is_file() else ():
        m = re.match(r"\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s#;]+)", line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def _extras(tox_env):
    try:
        return set(tox_env.conf["extras"])
    except Exception:  # noqa: BLE001 - an environment type without extras
        return set()


def _installed(site):
    return {d.metadata["Name"].lower(): d for d in metadata.distributions(path=[str(site)])}


def share(target, donors):
    """Hard-link SHARED distributions from the first donor site-packages holding them
    (at the pinned version, where constraints.txt pins one) into `target`. Returns
    the names linked."""
    pins, have, linked = _pins(), _installed(target), []
    for name in SHARED:
        if name in have:
            continue
        for donor in donors:
            dist = _installed(donor).get(name)
            if dist is None or not dist.files or (name in pins and not SpecifierSet(
                    f"=={pins[name]}").contains(dist.version)):  # 2.13.0+cpu is 2.13.0
                continue
            # not its scripts; its .dist-info last, so that pip sees it installed only
            # once every other file is in place
            files = sorted((f for f in dist.files if ".." not in Path(f).parts),
                           key=lambda f: ".dist-info" in str(f))
            try:
                for f in files:
                    src, dst = donor / f, target / f
                    if src.is_file() and not dst.exists():
                        dst.parent.mkdir(parents=True, exist_ok=True)
                        os.link(src, dst)
            except OSError:  # another device, a file system without links: pip installs it
                continue
            linked.append(f"{name} {dist.version}")
            break
    return linked


@impl
def tox_on_install(tox_env, arguments, section, of_type):
    site = getattr(tox_env, "env_site_package_dir", None)
    if site is None or of_type != "package" or not ({"oracles", "test"} & _extras(tox_env)):
        return  # only environments whose extras bring torch and JAX (not report, lint)
    target = Path(site())
    version = target.parent.name  # pythonX.Y
    work = Path(tox_env.core["work_dir"])
    donors = [p for p in sorted(work.glob(f"*/lib/{version}/site-packages"))
              if p.resolve() != target.resolve()]
    linked = share(target, donors)
    if linked:
        print(f"{tox_env.name}: shared with another environment (hard links): "
              f"{', '.join(linked)}")
