package zmqwire

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// Known answers computed with Python's hmac module, i.e. what
// jupyter_client.session.Session.sign produces:
//
//	hmac.new(b"secret", header+parent+metadata+content, name).hexdigest()
var kat = struct {
	header, parent, metadata, content string
	want                              map[string]string
}{
	header: `{"msg_id":"a","msg_type":"b"}`, parent: `{}`, metadata: `{}`, content: `{"x":1}`,
	want: map[string]string{
		"hmac-md5":      "21259188286d5ba34daed2ccccce94c3",
		"hmac-sha1":     "d448e377b52efa42c42765b1d3bf9f2fe5a26475",
		"hmac-sha224":   "bfbd583617e517faf1a8829e859279732f6434b16427a2ac2fa71790",
		"hmac-sha256":   "d87b616ef0deb14f5969c906f08a97cf4fbf757f7092b13c802191c983912731",
		"hmac-sha384":   "e06a54f3c19a71a30be1b1a60aac3d557872d657afeda5a97ce843e5ea581372465a7c50aea1d9886777e66e1e1701e0",
		"hmac-sha512":   "d8397f28d1b4fd2471b87ed20205925d77febd3e11ca2312dc448143b6dadc4a34a9b62be7bf1ce194d2d93d92f1c3db9d0f2e87ba30ae7736d8971c331fd3b0",
		"hmac-sha3_256": "161fee525db2be96cca9e1483754ece3fc23d6fb3813d900b1131437b952b3ae",
		"":              "d87b616ef0deb14f5969c906f08a97cf4fbf757f7092b13c802191c983912731", // default sha256
	},
}

func TestSignerKnownAnswers(t *testing.T) {
	h, p, md, c := []byte(kat.header), []byte(kat.parent), []byte(kat.metadata), []byte(kat.content)
	for scheme, want := range kat.want {
		t.Run(scheme, func(t *testing.T) {
			s, err := NewSigner(scheme, []byte("secret"))
			if err != nil {
				t.Fatal(err)
			}
			if got := string(s.Sign(h, p, md, c)); got != want {
				t.Errorf("Sign = %s, want %s", got, want)
			}
			if !s.Verify([]byte(want), h, p, md, c) {
				t.Error("Verify(correct signature) = false")
			}
			if s.Verify([]byte(strings.ToUpper(want)), h, p, md, c) {
				t.Error("Verify accepted upper-case hex; jupyter_client does not")
			}
			if s.Verify([]byte(want), h, p, md, []byte(`{"x":2}`)) {
				t.Error("Verify accepted a signature over different content")
			}
			if s.Verify([]byte(want[:len(want)-2]), h, p, md, c) {
				t.Error("Verify accepted a truncated signature")
			}
			// The frame boundaries are not signed, only the concatenation;
			// this is the protocol's definition, not a choice of ours.
			if !s.Verify([]byte(want), h[:5], append(h[5:len(h):len(h)], p...), md, c) {
				t.Error("signature is not over the plain concatenation")
			}
		})
	}
}

func TestNewSignerErrors(t *testing.T) {
	for _, tc := range []struct {
		scheme, wantSubstr string
	}{
		{"hmac-whirlpool", `unsupported signature scheme "hmac-whirlpool"`},
		{"hmac-", `unsupported signature scheme "hmac-"`},
		{"hmac-SHA256", `unsupported signature scheme "hmac-SHA256"`}, // hashlib names are lower case
		{"sha256", `signature scheme "sha256": must start with "hmac-"`},
	} {
		for _, key := range []string{"", "k"} {
			s, err := NewSigner(tc.scheme, []byte(key))
			if err == nil || !strings.Contains(err.Error(), tc.wantSubstr) || s != nil {
				t.Errorf("NewSigner(%q, %q) = %v, %v; want error containing %q", tc.scheme, key, s, err, tc.wantSubstr)
			}
		}
	}
}

func TestSignerDisabled(t *testing.T) {
	empty, err := NewSigner("hmac-sha256", nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*Signer{"nil": nil, "empty key": empty} {
		if s.Enabled() {
			t.Errorf("%s: Enabled() = true", name)
		}
		if sig := s.Sign([]byte("{}"), nil, nil, nil); sig == nil || len(sig) != 0 {
			t.Errorf("%s: Sign = %q, want empty non-nil", name, sig)
		}
		if !s.Verify([]byte("anything"), nil, nil, nil, nil) || !s.Verify(nil, nil, nil, nil, nil) {
			t.Errorf("%s: Verify rejected with signing disabled", name)
		}
	}
	if got := (*Signer)(nil).Scheme(); got != "" {
		t.Errorf("nil Scheme() = %q", got)
	}
	if got := empty.Scheme(); got != "hmac-sha256" {
		t.Errorf("Scheme() = %q", got)
	}
}

func TestSignerCopiesKey(t *testing.T) {
	key := []byte("secret")
	s, err := NewSigner("", key)
	if err != nil {
		t.Fatal(err)
	}
	copy(key, "XXXXXX")
	got := s.Sign([]byte(kat.header), []byte(kat.parent), []byte(kat.metadata), []byte(kat.content))
	if string(got) != kat.want["hmac-sha256"] {
		t.Error("Signer is affected by the caller changing its key slice")
	}
}

// Run with -race: one Signer is shared by all of a connection's readers and
// writers.
func TestSignerConcurrent(t *testing.T) {
	s, err := NewSigner("hmac-sha256", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				c := []byte(fmt.Sprintf(`{"g":%d,"i":%d}`, g, i))
				sig := s.Sign([]byte(kat.header), nil, nil, c)
				if !s.Verify(sig, []byte(kat.header), nil, nil, c) {
					t.Errorf("goroutine %d: own signature rejected", g)
					return
				}
				if s.Verify(sig, []byte(kat.header), nil, nil, []byte("{}")) {
					t.Errorf("goroutine %d: signature accepted for other content", g)
					return
				}
			}
		})
	}
	wg.Wait()
}
