"""The scanner that guards results/ and logs finds what it must and passes what it must."""

from __future__ import annotations

from benchpipe.secrets_scan import scan


def test_finds_keys_and_env_values(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value-from-the-environment")
    (tmp_path / "a.log").write_text("connecting with AKIAABCDEFGHIJKLMNOP\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.json").write_text('{"k": "-----BEGIN OPENSSH PRIVATE KEY-----"}')
    (tmp_path / "c.txt").write_text("env: s3cr3t-value-from-the-environment")
    (tmp_path / "clean.json").write_text('{"instance": "i-0123456789abcdef0", "ami": "ami-0cfb31bd9b06138c7"}')
    found = scan([tmp_path])
    assert any("a.log: AWS access key id" in f for f in found)
    assert any("m.json: private key" in f for f in found)
    assert any("c.txt: the value of $AWS_SECRET_ACCESS_KEY" in f for f in found)
    assert not any("clean.json" in f for f in found)
    assert not any("s3cr3t" in f for f in found), "a finding must not repeat the secret"
