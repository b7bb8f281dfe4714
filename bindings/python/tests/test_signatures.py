import pytest

import nexuslite


def test_keys_and_signatures(tmp_path):
    priv, pub = nexuslite.keygen()
    assert "BEGIN PRIVATE KEY" in priv and "BEGIN PUBLIC KEY" in pub
    assert nexuslite.public_key(priv) == pub
    sig = nexuslite.sign(priv, b"signed bytes")
    assert nexuslite.verify(pub, b"signed bytes", sig)
    assert not nexuslite.verify(pub, b"other bytes", sig)
    with pytest.raises(nexuslite.NexusError) as e:
        nexuslite.sign(pub, b"x")
    assert e.value.code == 3  # NEXUS_INVALID_ARGUMENT
    f = tmp_path / "export.ndjson"
    f.write_text('{"a": 1}\n')
    assert not nexuslite.verify_file(f, pub)
    nexuslite.sign_file(f, priv)
    assert nexuslite.verify_file(f, pub)
    f.write_text('{"a": 2}\n')
    assert not nexuslite.verify_file(f, pub)


def test_keygen_algorithm():
    priv, pub = nexuslite.keygen("p256")
    assert "BEGIN PRIVATE KEY" in priv and nexuslite.public_key(priv) == pub
    with pytest.raises(nexuslite.NexusError) as e:
        nexuslite.keygen("rsa")
    assert e.value.code == 3  # NEXUS_INVALID_ARGUMENT
    # The shipped library is built without the feature pqc: post-quantum names are known but
    # not built; a pqc build makes the key.
    try:
        priv, pub = nexuslite.keygen("ml-dsa-65")
    except nexuslite.NexusError as e:
        assert e.code == 13  # NEXUS_UNSUPPORTED
        assert "pqc" in str(e)
    else:
        sig = nexuslite.sign(priv, b"signed bytes")
        assert nexuslite.verify(pub, b"signed bytes", sig)
