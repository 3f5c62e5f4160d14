package zmqwire

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
	"sync"
)

// DefaultScheme is the signature scheme used when none is configured; it is
// also what jupyter_client writes into connection files.
const DefaultScheme = "hmac-sha256"

// digests maps the hash part of a signature scheme ("hmac-<name>") to its
// constructor. Jupyter accepts any Python hashlib name; these are the ones
// the Go standard library provides, spelled as hashlib spells them.
var digests = map[string]func() hash.Hash{
	"md5":      md5.New,
	"sha1":     sha1.New,
	"sha224":   sha256.New224,
	"sha256":   sha256.New,
	"sha384":   sha512.New384,
	"sha512":   sha512.New,
	"sha3_224": func() hash.Hash { return sha3.New224() },
	"sha3_256": func() hash.Hash { return sha3.New256() },
	"sha3_384": func() hash.Hash { return sha3.New384() },
	"sha3_512": func() hash.Hash { return sha3.New512() },
}

// Signer signs and verifies messages with the connection file's key and
// signature_scheme. A nil *Signer, or one made with an empty key, disables
// signing: Sign returns an empty signature and Verify accepts anything, as
// Jupyter does when the key is empty.
//
// A Signer is safe for concurrent use. It keeps no history of seen
// signatures; replay detection, if wanted, belongs to a stateful layer.
type Signer struct {
	scheme string
	size   int       // digest size in bytes
	pool   sync.Pool // of *mac; HMAC setup hashes the key, so reuse it
}

// mac is a pooled HMAC with scratch space for the digest and its hex form,
// so that Verify does not allocate.
type mac struct {
	h   hash.Hash
	sum []byte
	hex []byte
}

// NewSigner returns a Signer for scheme (e.g. "hmac-sha256"; "" means
// DefaultScheme) and key. An unknown scheme is an error even when the key is
// empty, so that a bad connection file is reported early.
func NewSigner(scheme string, key []byte) (*Signer, error) {
	if scheme == "" {
		scheme = DefaultScheme
	}
	name, ok := strings.CutPrefix(scheme, "hmac-")
	if !ok {
		return nil, fmt.Errorf("zmqwire: signature scheme %q: must start with \"hmac-\"", scheme)
	}
	newHash, ok := digests[name]
	if !ok {
		return nil, fmt.Errorf("zmqwire: unsupported signature scheme %q", scheme)
	}
	s := &Signer{scheme: scheme}
	if len(key) == 0 {
		return s, nil
	}
	key = append([]byte(nil), key...) // the caller may reuse its slice
	s.size = newHash().Size()
	s.pool.New = func() any {
		return &mac{
			h:   hmac.New(newHash, key),
			sum: make([]byte, 0, s.size),
			hex: make([]byte, 2*s.size),
		}
	}
	return s, nil
}

// Scheme returns the signature scheme, e.g. "hmac-sha256"; "" for nil.
func (s *Signer) Scheme() string {
	if s == nil {
		return ""
	}
	return s.scheme
}

// Enabled reports whether messages are signed and checked.
func (s *Signer) Enabled() bool { return s != nil && s.size > 0 }

// digest computes the lower-case hex HMAC of the four frames into m.hex.
func (s *Signer) digest(m *mac, header, parent, metadata, content []byte) []byte {
	m.h.Reset()
	m.h.Write(header)
	m.h.Write(parent)
	m.h.Write(metadata)
	m.h.Write(content)
	m.sum = m.h.Sum(m.sum[:0])
	hex.Encode(m.hex, m.sum)
	return m.hex
}

// Sign returns the lower-case hex signature of the four JSON frames, in a new
// slice. With signing disabled it returns an empty, non-nil slice.
func (s *Signer) Sign(header, parent, metadata, content []byte) []byte {
	if !s.Enabled() {
		return []byte{}
	}
	m := s.pool.Get().(*mac)
	defer s.pool.Put(m)
	return append([]byte(nil), s.digest(m, header, parent, metadata, content)...)
}

// Verify reports whether sig is the signature of the four JSON frames. The
// comparison is constant time. Like jupyter_client, only lower-case hex is
// accepted. With signing disabled every signature is accepted.
func (s *Signer) Verify(sig, header, parent, metadata, content []byte) bool {
	if !s.Enabled() {
		return true
	}
	// A wrong length cannot match; skipping the HMAC then leaks only the
	// length, which is public anyway.
	if len(sig) != 2*s.size {
		return false
	}
	m := s.pool.Get().(*mac)
	defer s.pool.Put(m)
	return hmac.Equal(sig, s.digest(m, header, parent, metadata, content))
}
