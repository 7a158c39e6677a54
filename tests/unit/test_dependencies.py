"""The dependency check tells "not installed" from "installed but fails to import", and says why.

Fake packages are written into ``tmp_path`` and put first on ``sys.path``: one that is absent, one
whose import raises the RuntimeError of a torchvision built for another torch (bare, and wrapped the
way transformers wraps it), one that needs a module that is missing, one with a broken shared
library. Fake ``torch``/``torchvision`` metadata next to them gives the fix its versions.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from colpali_milvus import MissingDependencyError
from colpali_milvus._deps import require, root_cause
from colpali_milvus.errors import BrokenDependencyError, ColPaliMilvusError

_NMS = "operator torchvision::nms does not exist"

_PACKAGES = {
    # a torchvision built for another torch fails like this, inside torch.library
    "cmfake_vision": f"raise RuntimeError({_NMS!r})\n",
    # transformers' lazy modules re-raise such a failure as their own error, with no module name
    "cmfake_engine": """
        try:
            import cmfake_vision
        except Exception as error:
            raise ModuleNotFoundError(
                "Could not import module 'Gemma3Model'. Are this object's requirements defined correctly?"
            ) from error
    """,
    # an installed package that needs a module that is not installed
    "cmfake_outer": "import cmfake_inner_absent\n",
    # an installed package whose own names do not match (a version mismatch)
    "cmfake_lib": "VALUE = 1\n",
    "cmfake_user": "from cmfake_lib import name_of_a_newer_release\n",
    # a compiled library that does not load
    "cmfake_native": "raise OSError('libfoo.so.3: cannot open shared object file: No such file or directory')\n",
    "cmfake_fine": "VALUE = 42\n",
}

_DISTRIBUTIONS = {
    "torch-2.13.0+cpu": "Name: torch\nVersion: 2.13.0+cpu\n",
    "torchvision-0.28.0": "Name: torchvision\nVersion: 0.28.0\nRequires-Dist: numpy\nRequires-Dist: torch (==2.13.0)\n",
}


@pytest.fixture
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name, source in _PACKAGES.items():
        package = tmp_path / name
        package.mkdir()
        (package / "__init__.py").write_text(textwrap.dedent(source), encoding="utf-8")
    for name, metadata in _DISTRIBUTIONS.items():
        info = tmp_path / f"{name}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\n{metadata}", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in list(sys.modules):
        if name.split(".")[0].startswith("cmfake_"):
            del sys.modules[name]


def test_an_installed_module_is_returned(fake_site: Path) -> None:
    assert require("cmfake_fine", extra="demo").VALUE == 42


@pytest.mark.parametrize("module", ["cmfake_absent", "cmfake_absent.models", "cmfake_fine.absent_submodule"])
def test_a_module_that_is_not_installed_names_the_extra(fake_site: Path, module: str) -> None:
    with pytest.raises(MissingDependencyError) as raised:
        require(module, extra="demo", package="fake-absent")
    error = raised.value
    assert type(error) is MissingDependencyError
    assert str(error) == (
        "'fake-absent' is required for this feature; install it with `pip install \"colpali-milvus[demo]\"`"
    )
    assert isinstance(error.__cause__, ModuleNotFoundError)
    assert (error.package, error.extra) == ("fake-absent", "demo")


@pytest.mark.parametrize("module", ["cmfake_vision", "cmfake_engine"], ids=["bare", "wrapped-like-transformers"])
def test_a_torchvision_built_for_another_torch_is_named_with_the_matching_pair(fake_site: Path, module: str) -> None:
    with pytest.raises(BrokenDependencyError) as raised:
        require(module, extra="colpali", package="colpali-engine")
    error = raised.value
    message = str(error)
    assert message.startswith(f"'colpali-engine' is installed but fails to import: RuntimeError: {_NMS}.")
    assert "is required for this feature" not in message
    assert "torch 2.13.0+cpu and torchvision 0.28.0 are builds that do not match" in message
    assert '`pip install "torch===2.13.0" "torchvision==0.28.0"`' in message
    assert "scripts/install-dev.sh" in message
    # the deepest cause, and the chain from the import's own error down to it
    assert isinstance(error.cause, RuntimeError)
    assert str(error.cause) == _NMS
    assert isinstance(error.__cause__, (RuntimeError, ModuleNotFoundError))
    assert root_cause(error.__cause__) is error.cause
    # one except clause still catches it, as an ImportError and as the library's own error
    assert isinstance(error, MissingDependencyError)
    assert isinstance(error, ImportError)
    assert isinstance(error, ColPaliMilvusError)


def test_a_missing_inner_dependency_is_named_not_blamed_on_the_package(fake_site: Path) -> None:
    with pytest.raises(BrokenDependencyError) as raised:
        require("cmfake_outer", extra="demo", package="fake-outer")
    message = str(raised.value)
    assert message.startswith(
        "'fake-outer' is installed but fails to import: ModuleNotFoundError: No module named 'cmfake_inner_absent'."
    )
    assert "the module 'cmfake_inner_absent' it needs is not installed" in message
    assert 'pip install "colpali-milvus[demo]"' in message
    assert isinstance(raised.value.__cause__, ModuleNotFoundError)
    assert raised.value.__cause__.name == "cmfake_inner_absent"


@pytest.mark.parametrize(
    ("module", "cause", "text"),
    [
        ("cmfake_user", ImportError, "cannot import name 'name_of_a_newer_release'"),
        ("cmfake_native", OSError, "libfoo.so.3: cannot open shared object file"),
    ],
)
def test_other_import_failures_show_the_cause_and_a_generic_fix(
    fake_site: Path, module: str, cause: type[BaseException], text: str
) -> None:
    with pytest.raises(BrokenDependencyError) as raised:
        require(module, extra="demo")
    message = str(raised.value)
    assert message.startswith(f"{module!r} is installed but fails to import: {cause.__name__}: ")
    assert text in message
    assert "`pip check`" in message
    assert "torchvision" not in message
    assert type(raised.value.cause) is cause


def test_the_root_cause_follows_causes_then_contexts_and_stops_on_cycles() -> None:
    inner = RuntimeError("inner")
    middle = ValueError("middle")
    middle.__context__ = inner  # implicit: raised while handling `inner`
    outer = ImportError("outer")
    outer.__cause__ = middle
    assert root_cause(outer) is inner

    middle.__suppress_context__ = True  # `raise ... from None` hides the context
    assert root_cause(outer) is middle

    first, second = RuntimeError("a"), RuntimeError("b")
    first.__cause__, second.__cause__ = second, first
    assert root_cause(first) is second
