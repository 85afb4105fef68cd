"""`mmaml data fetch` on local files (no network here): checksums verified, offline and bad names reported."""

import hashlib
import io
import tarfile

import pytest

from mmaml.cli.main import main
from mmaml.data import fc100, omniglot


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_fetch_omniglot_from_local_files_verifies_checksums(tmp_path, monkeypatch, capsys):
    served = tmp_path / "served"
    served.mkdir()
    md5 = {}
    for name in omniglot.SETS:
        data = f"zip bytes of {name}".encode()
        (served / f"{name}.zip").write_bytes(data)
        md5[name] = _md5(data)
    monkeypatch.setattr(omniglot, "URL", served.as_uri() + "/{name}.zip")
    monkeypatch.setattr(omniglot, "MD5", md5)
    root = tmp_path / "data"
    assert main(["data", "fetch", "omniglot", "--root", str(root)]) == 0
    for name in omniglot.SETS:
        assert (root / "omniglot" / f"{name}.zip").read_bytes() == (served / f"{name}.zip").read_bytes()
    # a served file that does not match its checksum is refused and not kept
    (root / "omniglot" / f"{omniglot.SETS[0]}.zip").unlink()
    (served / f"{omniglot.SETS[0]}.zip").write_bytes(b"tampered")
    capsys.readouterr()
    assert main(["data", "fetch", "omniglot", "--root", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "corrupt" in err
    assert not (root / "omniglot" / f"{omniglot.SETS[0]}.zip").exists()


def test_fetch_extracts_archives(tmp_path, monkeypatch):
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w:gz") as t:
        info = tarfile.TarInfo("cifar-100-python/meta")
        info.size = 4
        t.addfile(info, io.BytesIO(b"meta"))
    archive = tmp_path / "cifar.tar.gz"
    archive.write_bytes(payload.getvalue())
    monkeypatch.setattr(fc100, "URL", archive.as_uri())
    monkeypatch.setattr(fc100, "MD5", _md5(payload.getvalue()))
    assert main(["data", "fetch", "fc100", "--root", str(tmp_path / "data")]) == 0
    assert (tmp_path / "data" / "cifar-100-python" / "meta").read_bytes() == b"meta"


@pytest.mark.parametrize("name, needle", [("imagenet", "unknown data set"), ("mini_imagenet", "no official archive")])
def test_fetch_bad_name_is_one_line(tmp_path, capsys, name, needle):
    assert main(["data", "fetch", name, "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err


def test_fetch_offline_says_how_to_get_the_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fc100, "URL", (tmp_path / "nowhere.tar.gz").as_uri())
    assert main(["data", "fetch", "fc100", "--root", str(tmp_path / "data" / "sets")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "could not download" in err and "by hand" in err
    assert not (tmp_path / "data").exists()  # no empty folder left behind
    # in a data folder that exists, a failed fetch removes only the empty folders it made
    root = tmp_path / "existing"
    (root / "kept").mkdir(parents=True)
    (root / "other.txt").write_text("x")
    monkeypatch.setattr(omniglot, "URL", (tmp_path / "nowhere-{name}.zip").as_uri())
    assert main(["data", "fetch", "omniglot", "--root", str(root)]) == 2
    assert sorted(p.name for p in root.iterdir()) == ["kept", "other.txt"]


def test_data_list_says_where_each_data_set_is(tmp_path, capsys):
    root = tmp_path / "data"
    (root / "tiny-imagenet-200").mkdir(parents=True)
    (root / "tiny-imagenet-200" / "wnids.txt").write_text("n01\n")
    (root / "cifar-100-python").mkdir()
    (root / "cifar-100-python" / "train").write_bytes(b"")
    assert main(["data", "list", "--root", str(root)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert lines["tiny_imagenet"].endswith(f"present in {root / 'tiny-imagenet-200'}")
    assert lines["fc100"].endswith(f"present in {root / 'cifar-100-python'}")
    assert lines["omniglot"].endswith("missing; get it: mmaml data fetch omniglot")
    assert "missing; get it: no official archive" in lines["mini_imagenet"]


def test_data_list_names_every_data_set_and_the_missing_data_error_names_the_command(tmp_path, capsys):
    from mmaml.data.image_classes import DataError
    from mmaml.data.registry import DATASETS

    assert main(["data", "list", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in DATASETS) and "mmaml data fetch omniglot" in out
    with pytest.raises(DataError, match="mmaml data fetch omniglot"):
        omniglot.load(tmp_path, tmp_path / "cache", 28)
