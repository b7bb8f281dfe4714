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
