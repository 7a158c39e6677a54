"""Issue 11, item 10: --help lists the environment and describes every argument; --version; --password."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_types import Run

import colpali_milvus
from colpali_milvus import ColPaliIndex, MilvusMultiVectorStore
from colpali_milvus.cli import ENV_PREFIX, ENVIRONMENT
from colpali_milvus.pages import read_pdf
from helpers import ColourEmbedder, PdfPage, write_pdf

COMMAND_OPTIONS = {
    "index": ["--uri", "--token", "--collection", "--image-dir", "--model", "--device", "--password"],
    "search": ["--uri", "--token", "--collection", "--image-dir", "--model", "--device"],
    "info": ["--uri", "--token", "--collection", "--image-dir"],
    "delete": ["--uri", "--token", "--collection", "--image-dir"],
}


def env_lines(help_text: str) -> dict[str, str]:
    """``{variable: option}`` of the help's environment section."""
    return dict(re.findall(rf"^\s+({ENV_PREFIX}\w+)\s+(--[\w-]+)", help_text, flags=re.MULTILINE))


def test_help_lists_every_environment_variable(cli: Run) -> None:
    main = cli("--help")
    assert main.returncode == 0
    assert env_lines(main.stdout) == {f"{ENV_PREFIX}{name}": option for name, (option, _) in ENVIRONMENT.items()}
    assert "exit status:" in main.stdout and "3    partly done" in main.stdout
    for command, options in COMMAND_OPTIONS.items():
        shown = cli(command, "--help").stdout
        assert env_lines(shown) == {
            f"{ENV_PREFIX}{name}": option for name, (option, _) in ENVIRONMENT.items() if option in options
        }, command
        assert "exit status:" in shown


@pytest.mark.parametrize(("command", "metavar"), [("index", "PATH"), ("search", "question"), ("delete", "SOURCE")])
def test_positional_arguments_are_described(cli: Run, command: str, metavar: str) -> None:
    shown = cli(command, "--help").stdout
    section = shown.split("positional arguments:\n", 1)[1].split("\n\n", 1)[0]
    assert re.match(rf"^  {metavar}\s+\S", section), section


def test_version(cli: Run) -> None:
    done = cli("--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"colpali-milvus {colpali_milvus.__version__}")


@pytest.fixture
def locked(workdir: Path) -> Path:
    """A 2-page PDF with user password s3cret and owner password 0wner."""
    from pypdf import PdfReader, PdfWriter

    plain = write_pdf(workdir.parent / "plain.pdf", [PdfPage((1, 0, 0)), PdfPage((0, 1, 0))])
    writer = PdfWriter()
    for page in PdfReader(plain).pages:
        writer.add_page(page)
    writer.encrypt(user_password="s3cret", owner_password="0wner", algorithm="AES-128")
    path = workdir / "locked.pdf"
    with path.open("wb") as file:
        writer.write(file)
    return path


def test_encrypted_pdfs_take_a_password(fake_cli: Run, locked: Path) -> None:
    without = fake_cli("index", "locked.pdf", "--no-progress")
    assert without.returncode == 1
    assert f"{locked} is encrypted (password=... in Python, --password on the CLI)" in without.stderr

    wrong = fake_cli("index", "locked.pdf", "--password", "nope", "--no-progress")
    assert wrong.returncode == 1 and "a wrong password was given" in wrong.stderr

    done = fake_cli("index", "locked.pdf", "--password", "s3cret", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "2 pages, 2 new" in done.stdout


@pytest.mark.parametrize("how", ["option", "environment"])
def test_the_owner_password_renders_too(fake_cli: Run, locked: Path, how: str) -> None:
    if how == "option":
        done = fake_cli("index", "locked.pdf", "--password", "0wner", "--no-progress")
    else:
        done = fake_cli("index", "locked.pdf", "--no-progress", env={"COLPALI_MILVUS_PASSWORD": "0wner"})
    assert done.returncode == 0, done.stderr
    assert "2 pages, 2 new" in done.stdout


def test_the_owner_password_renders_in_the_library(locked: Path, lite_uri: str) -> None:
    pages = list(read_pdf(locked, password="0wner", dpi=36))
    assert [page.page for page in pages] == [1, 2]
    with MilvusMultiVectorStore(lite_uri, dim=16) as store:
        index = ColPaliIndex(ColourEmbedder(), store)
        report = index.add_files([locked], password="0wner")
        assert (len(report.page_ids), report.skipped) == (2, ())
