package nexus

// Keys and signatures: P-256 key pairs as the PEM OpenSSL reads (PKCS#8 private,
// SPKI public) and ECDSA-SHA256 signatures (DER; base64 for bytes in memory, a
// FILE.sig file for files). A signature that does not match is an *Error with
// CodeCrypto (errors.Is(err, ErrCrypto)); a malformed key has
// CodeInvalidArgument.

// Keygen makes a P-256 key pair: the private key (PKCS#8 PEM) and the public
// key (SPKI PEM).
func Keygen() (privatePEM, publicPEM string, err error) { return capiKeygen("") }

// KeygenAlgorithm makes a key pair of the named algorithm: "p256" (what Keygen
// makes) or, in a library built with the cargo feature pqc, "ml-dsa-65",
// "slh-dsa-sha2-128s", "slh-dsa-sha2-192s", "slh-dsa-sha2-256s" (signature
// keys: Sign, Verify, SignFile and VerifyFile take them) and "ml-kem-512",
// "ml-kem-768", "ml-kem-1024" (hybrid P-256 + ML-KEM encryption keys). A
// post-quantum name in a library without pqc has CodeUnsupported
// (errors.Is(err, ErrUnsupported)); an unknown name CodeInvalidArgument.
func KeygenAlgorithm(algorithm string) (privatePEM, publicPEM string, err error) {
	if algorithm == "" {
		algorithm = "p256"
	}
	return capiKeygen(algorithm)
}

// PublicKey returns the public key (SPKI PEM) of a private key.
func PublicKey(privatePEM string) (string, error) { return capiPublicKey(privatePEM) }

// Sign returns the ECDSA-SHA256 signature of data by privatePEM, DER in base64.
func Sign(privatePEM string, data []byte) (string, error) { return capiSign(privatePEM, data) }

// Verify checks a signature made by Sign: nil when it matches data and publicPEM.
func Verify(publicPEM string, data []byte, signatureB64 string) error {
	return capiVerify(publicPEM, data, signatureB64)
}

// SignFile signs the file at path, writing PATH.sig (what `openssl dgst -sha256
// -sign` writes).
func SignFile(path, privatePEM string) error { return capiSignFile(path, privatePEM) }

// VerifyFile checks PATH.sig against the file and publicPEM; a missing or
// non-matching signature has CodeCrypto.
func VerifyFile(path, publicPEM string) error { return capiVerifyFile(path, publicPEM) }
