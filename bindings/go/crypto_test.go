package nexus

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeysAndSignatures(t *testing.T) {
	priv, pub, err := Keygen()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(priv, "BEGIN PRIVATE KEY") || !strings.Contains(pub, "BEGIN PUBLIC KEY") {
		t.Fatalf("unexpected PEM: %q / %q", priv[:30], pub)
	}
	if derived, err := PublicKey(priv); err != nil || derived != pub {
		t.Fatalf("PublicKey: %v %q", err, derived)
	}
	data := []byte("signed bytes")
	sig, err := Sign(priv, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(pub, data, sig); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := Verify(pub, []byte("other bytes"), sig); !errors.Is(err, ErrCrypto) {
		t.Fatalf("tampered data: %v", err)
	}
	var e *Error
	if _, err := Sign(pub, data); !errors.As(err, &e) || e.Code != CodeInvalidArgument {
		t.Fatalf("a public key to Sign: %v", err)
	}
	if _, err := Sign(priv, nil); err != nil {
		t.Fatalf("empty data: %v", err)
	}

	path := filepath.Join(t.TempDir(), "export.ndjson")
	if err := os.WriteFile(path, []byte("{\"a\":1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := VerifyFile(path, pub); !errors.Is(err, ErrCrypto) {
		t.Fatalf("no signature yet: %v", err)
	}
	if err := SignFile(path, priv); err != nil {
		t.Fatal(err)
	}
	if err := VerifyFile(path, pub); err != nil {
		t.Fatalf("VerifyFile: %v", err)
	}
	if err := os.WriteFile(path, []byte("{\"a\":2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := VerifyFile(path, pub); !errors.Is(err, ErrCrypto) {
		t.Fatalf("changed file: %v", err)
	}
}

// fileHolds reports whether needle occurs in the bytes of the file at path (a
// missing file holds nothing).
func fileHolds(t *testing.T, path, needle string) bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(b), needle)
}

func TestEncryptionAtRest(t *testing.T) {
	const marker = "go7MARKERzx"
	dir := t.TempDir()
	path := filepath.Join(dir, "enc.db")
	privA, pubA, err := Keygen()
	if err != nil {
		t.Fatal(err)
	}
	privB, pubB, err := Keygen()
	if err != nil {
		t.Fatal(err)
	}
	count := func(db *DB) uint64 {
		t.Helper()
		n, err := db.Collection("c_" + marker).Count(nil)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	db, err := Open(path, WithEncryptionKey(privA), WithStorage("wasp"))
	if err != nil {
		t.Fatal(err)
	}
	coll := db.Collection("c_" + marker)
	for i := 0; i < 100; i++ {
		if _, err := coll.Insert(map[string]any{"_id": i, "note": "secret " + marker, marker: i}); err != nil {
			t.Fatal(err)
		}
	}
	stats, err := db.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := stats["storage"].(map[string]any); st["encrypted"] != true {
		t.Fatalf("stats.storage.encrypted: %v", stats["storage"])
	}
	// Every connection of the process shows a key of its own.
	if _, err := Open(path); !errors.Is(err, ErrCrypto) {
		t.Fatalf("second connection without a key: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, filepath.Join(dir, "enc.wasp")} {
		if fileHolds(t, f, marker) {
			t.Fatalf("%s holds the marker in the clear", f)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() < 4096 {
		t.Fatalf("enc.db: %v %v", fi, err)
	}

	if _, err := Open(path); !errors.Is(err, ErrCrypto) || !strings.Contains(err.Error(), "encrypted") {
		t.Fatalf("no key: %v", err)
	}
	if _, err := Open(path, WithEncryptionKey(privB)); !errors.Is(err, ErrCrypto) {
		t.Fatalf("a key that is not a recipient: %v", err)
	}
	if _, err := Open(path, WithEncryptionKey(pubA)); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("a public key as the private one: %v", err)
	}
	db, err = Open(path, WithEncryptionKey(privA))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n := count(db); n != 100 {
		t.Fatalf("count %d", n)
	}
	var doc map[string]any
	if err := db.Collection("c_"+marker).FindOne(map[string]any{"_id": 7}, &doc); err != nil || doc["note"] != "secret "+marker {
		t.Fatalf("document 7: %v %v", doc, err)
	}
	if err := db.RemoveKey(pubA); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "last key") {
		t.Fatalf("removing the last key: %v", err)
	}
	if err := db.RemoveKey(pubB); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("removing a key that is no recipient: %v", err)
	}
	if err := db.AddKey("not a key"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("a malformed key: %v", err)
	}
	if err := db.AddKey(pubB); err != nil {
		t.Fatal(err)
	}
	if err := db.AddKey(pubB); err != nil {
		t.Fatalf("adding a key again: %v", err)
	}
	withB, err := Open(path, WithEncryptionKey(privB))
	if err != nil {
		t.Fatalf("B after AddKey: %v", err)
	}
	if n := count(withB); n != 100 {
		t.Fatalf("count through B: %d", n)
	}
	if err := withB.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.RemoveKey(pubA); err != nil {
		t.Fatal(err)
	}
	if err := db.Rekey(); err != nil {
		t.Fatal(err)
	}
	if n := count(db); n != 100 {
		t.Fatalf("count after Rekey: %d", n)
	}
	// A plain copy and one encrypted to A; encrypt_to with decrypt is refused.
	plainCopy := filepath.Join(dir, "plain-copy.db")
	if err := db.BackupWith(plainCopy, BackupOptions{Decrypt: true}); err != nil {
		t.Fatal(err)
	}
	aCopy := filepath.Join(dir, "a-copy.db")
	if err := db.BackupWith(aCopy, BackupOptions{EncryptTo: []string{pubA}, Decrypt: true}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("encrypt_to with decrypt: %v", err)
	}
	if err := db.BackupWith(aCopy, BackupOptions{EncryptTo: []string{pubA}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		opts []Option
	}{{plainCopy, nil}, {aCopy, []Option{WithEncryptionKey(privA)}}} {
		cdb, err := Open(c.path, c.opts...)
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		if n := count(cdb); n != 100 {
			t.Fatalf("%s: count %d", c.path, n)
		}
		cdb.Close()
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, WithEncryptionKey(privA)); !errors.Is(err, ErrCrypto) {
		t.Fatalf("A after RemoveKey: %v", err)
	}
	db, err = Open(path, WithEncryptionKey(privB))
	if err != nil {
		t.Fatal(err)
	}
	if n := count(db); n != 100 {
		t.Fatalf("count through B after removing A: %d", n)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// A plain database: no key at open, no key changes; no encryption in memory.
	plainPath := filepath.Join(dir, "plain.db")
	plain, err := Open(plainPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.AddKey(pubA); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("AddKey on a plain database: %v", err)
	}
	if err := plain.RemoveKey(pubA); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("RemoveKey on a plain database: %v", err)
	}
	if err := plain.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(plainPath, WithEncryptionKey(privA)); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("a plain database opened with a key: %v", err)
	}
	if _, err := Open(Memory, WithEncryptionKey(privA)); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("an in-memory database with a key: %v", err)
	}
	if _, err := Open(filepath.Join(dir, "m.db"), WithEncryptionKey(privA), WithStorage("memlog")); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("memlog with a key: %v", err)
	}
	if err := plain.AddKey(pubA); err == nil {
		t.Fatal("AddKey on a closed DB succeeded")
	}
}

func TestKeygenAlgorithm(t *testing.T) {
	priv, pub, err := KeygenAlgorithm("p256")
	if err != nil || !strings.Contains(priv, "BEGIN PRIVATE KEY") {
		t.Fatalf("p256: %v", err)
	}
	if derived, err := PublicKey(priv); err != nil || derived != pub {
		t.Fatalf("PublicKey: %v", err)
	}
	var e *Error
	if _, _, err := KeygenAlgorithm("rsa"); !errors.As(err, &e) || e.Code != CodeInvalidArgument {
		t.Fatalf("unknown algorithm: %v", err)
	}
	// The library the tests link is built without the feature pqc: the post-quantum names
	// are known but not built. A pqc build makes the key, and it signs.
	priv, pub, err = KeygenAlgorithm("ml-dsa-65")
	if err != nil {
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "pqc") {
			t.Fatalf("ml-dsa-65 without pqc: %v", err)
		}
		return
	}
	sig, err := Sign(priv, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(pub, []byte("x"), sig); err != nil {
		t.Fatal(err)
	}
}
