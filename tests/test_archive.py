"""ZIPs that anyone may send (issue 25): what the directory declares is checked before anything is extracted, and no
member's name is ever used as a path."""

from __future__ import annotations

import io
import struct
import time
import zipfile

import pytest
from PIL import Image

from colorization.archive import ArchiveError, ZipLimits, extract_zip, is_zip, member_name


def _png(colour=(200, 120, 40), size=(16, 12)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def _zip(path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize("name, expected", [("a.png", "a.png"), ("../../etc/x.png", "etc/x.png"),
                                            ("/abs/y.jpg", "abs/y.jpg"), ("C:\\win\\z.png", "C/win/z.png"),
                                            ("dir/./../w.png", "dir/w.png"), ("..", "photo"), ("a\0b.png", "ab.png")])
def test_a_member_name_is_a_relative_path_of_plain_parts(name, expected):
    assert member_name(name) == expected


def test_members_are_written_under_numbered_names_whatever_they_are_called(tmp_path):
    archive = _zip(tmp_path / "in.zip", {"../../escape.png": _png(), "/etc/passwd.png": _png(), "ok/b.png": _png(),
                                         "folder/": b"", "__MACOSX/ok/._b.png": b"junk", "ok/._c.png": b"junk"})
    out = tmp_path / "out"
    out.mkdir()
    members, notes = extract_zip(archive, out)
    assert [m.name for m in members] == ["escape.png", "etc/passwd.png", "ok/b.png"] and notes == []
    assert all(m.path.parent == out for m in members) and sorted(p.name for p in out.iterdir()) == [
        "member0000", "member0001", "member0002"]
    assert not (tmp_path / "escape.png").exists()
    assert Image.open(members[2].path).size == (16, 12)


def test_a_zip_inside_a_zip_a_damaged_member_and_an_encrypted_one_are_named_and_the_rest_extracted(tmp_path):
    inner = _zip(tmp_path / "inner.zip", {"x.png": _png()}).read_bytes()
    archive = _zip(tmp_path / "in.zip", {"good.png": _png(), "bad.png": _png(), "inner.zip": inner},
                   zipfile.ZIP_STORED)
    data = bytearray(archive.read_bytes())
    data[data.rindex(b"IEND") - 20] ^= 0xFF  # a flipped byte inside bad.png (inner's PNG is deflated): a bad CRC
    # The encryption flag set on good.png's two entries, as an encrypting tool writes it: its local header comes
    # first in the file, its directory entry third from last (the stored inner.zip holds signatures of its own).
    for at, offset in ((0, 6), ([i for i in range(len(data)) if data.startswith(b"PK\x01\x02", i)][-3], 8)):
        flags = struct.unpack_from("<H", data, at + offset)[0]
        struct.pack_into("<H", data, at + offset, flags | 1)
    archive.write_bytes(bytes(data))
    members, notes = extract_zip(archive, tmp_path)
    assert members == []
    assert notes[0] == "good.png is encrypted"
    assert notes[1].startswith("bad.png could not be read from the ZIP (Bad CRC-32")
    assert notes[2] == "inner.zip is a ZIP inside the ZIP; those are not opened"


def test_a_directory_of_100000_entries_is_refused_before_it_is_parsed(tmp_path):
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for i in range(100_000):
            archive.writestr(f"{i:x}", b"")
    start = time.perf_counter()
    with pytest.raises(ArchiveError, match="declares at least 65,535 entries"):
        extract_zip(path, tmp_path, ZipLimits(entries=200))
    assert time.perf_counter() - start < 0.5  # zipfile alone parses this directory in about 0.7 s


def test_declared_sizes_are_checked_before_extraction_and_a_lying_member_stops_at_its_declared_size(tmp_path):
    bomb = _zip(tmp_path / "bomb.zip", {f"z{i}.png": b"\0" * (20 * 2**20) for i in range(3)})
    assert bomb.stat().st_size < 2**20  # 60 MB of zeros in well under 1 MB
    with pytest.raises(ArchiveError, match="declares 60 MB in all; at most 50 MB are read"):
        extract_zip(bomb, tmp_path, ZipLimits(total_bytes=50 * 2**20))
    with pytest.raises(ArchiveError, match="declares z0.png as 20 MB; at most 10 MB per photo"):
        extract_zip(bomb, tmp_path, ZipLimits(member_bytes=10 * 2**20))
    # 10 GB declared: the directory's size field says so, whatever the data holds.
    huge = bytearray(_zip(tmp_path / "huge.zip", {"a.png": b"\0" * 1000}, zipfile.ZIP_DEFLATED).read_bytes())
    at = huge.index(b"PK\x01\x02")
    struct.pack_into("<L", huge, at + 24, 0xFFFFFFFF)  # uncompressed size: 4 GB, the most a plain entry declares
    (tmp_path / "huge.zip").write_bytes(bytes(huge))
    with pytest.raises(ArchiveError, match="declares a.png as 4,096 MB"):
        extract_zip(tmp_path / "huge.zip", tmp_path)
    # A member that declares less than it holds is cut at what it declared, and its CRC check names it.
    liar = bytearray(_zip(tmp_path / "liar.zip", {"a.png": b"\0" * 100_000}).read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        struct.pack_into("<L", liar, liar.index(signature) + offset, 10)
    (tmp_path / "liar.zip").write_bytes(bytes(liar))
    out = tmp_path / "liar"
    out.mkdir()
    members, notes = extract_zip(tmp_path / "liar.zip", out)
    assert members == [] and "Bad CRC-32" in notes[0] and list(out.iterdir()) == []


def test_what_is_not_a_zip_is_refused_with_one_message(tmp_path):
    for data in (b"PK\x03\x04 and then nothing", b"", _png()):
        path = tmp_path / "x.zip"
        path.write_bytes(data)
        with pytest.raises(ArchiveError, match="is not a readable ZIP"):
            extract_zip(path, tmp_path)
    assert is_zip(_zip(tmp_path / "ok.zip", {"a.png": _png()})) and not is_zip(path)
