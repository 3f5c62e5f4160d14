package zmqwire

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/kernelgate/kernelgate/internal/jmsg"
)

// msgOpts: Decode returns nil Identities and Buffers when there are
// none, whatever the encoded message held.
// msgOpts compares messages by content: empty equals nil, and the raw
// header bytes (set by Decode, never by hand) are checked on their own.
var msgOpts = cmp.Options{cmpopts.EquateEmpty(), cmpopts.IgnoreFields(jmsg.Message{}, "RawHeader", "RawParent")}

var allSchemes = []string{
	"hmac-md5", "hmac-sha1", "hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512",
	"hmac-sha3_224", "hmac-sha3_256", "hmac-sha3_384", "hmac-sha3_512",
}

func mustSigner(t testing.TB, scheme, key string) *Signer {
	t.Helper()
	s, err := NewSigner(scheme, []byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func header(msgType string) jmsg.Header {
	return jmsg.Header{
		MsgID:    "9b2e6f0c-5f4f2d7e8a1b4c3d9e0f1a2b_123_4",
		Session:  "9b2e6f0c-5f4f2d7e8a1b4c3d9e0f1a2b",
		Username: "kernel",
		Date:     "2024-05-01T12:00:00.123456Z",
		MsgType:  msgType,
		Version:  "5.3",
	}
}

func testMessages() map[string]*jmsg.Message {
	req := header(jmsg.ExecuteRequest)
	return map[string]*jmsg.Message{
		"reply, no identities": {
			Header:   header(jmsg.ExecuteReply),
			Parent:   req,
			Metadata: json.RawMessage(`{"started":"2024-05-01T12:00:00.1Z"}`),
			Content:  json.RawMessage(`{"status":"ok","execution_count":1,"user_expressions":{}}`),
		},
		"iopub topic": {
			Identities: [][]byte{[]byte("kernel.abc.status")},
			Header:     header(jmsg.Status),
			Parent:     req,
			Metadata:   json.RawMessage(`{}`),
			Content:    json.RawMessage(`{"execution_state":"busy"}`),
		},
		"empty parent": {
			Header:   header(jmsg.Status),
			Metadata: json.RawMessage(`{}`),
			Content:  json.RawMessage(`{"execution_state":"starting"}`),
		},
		"router identities and buffers": {
			Identities: [][]byte{[]byte("a"), {0, 1, 2}, {}},
			Header:     header(jmsg.CommMsg),
			Parent:     req,
			Metadata:   json.RawMessage(`{}`),
			Content:    json.RawMessage(`{"comm_id":"c","data":{}}`),
			// An empty buffer and one that looks like the delimiter: only the
			// first delimiter counts.
			Buffers: [][]byte{{0xff, 0x00}, {}, []byte(Delimiter), bytes.Repeat([]byte("z"), 1<<10)},
		},
		"whitespace and unicode kept byte for byte": {
			Header:   header(jmsg.Stream),
			Parent:   req,
			Metadata: json.RawMessage(" {\n} "),
			Content:  json.RawMessage(`{ "name" : "stdout", "text": "h\u00e9 \u2028 ü <b>\n" }`),
		},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, scheme := range allSchemes {
		for name, m := range testMessages() {
			t.Run(scheme+"/"+name, func(t *testing.T) {
				s := mustSigner(t, scheme, "round-trip-key")
				frames, err := Encode(m, s)
				if err != nil {
					t.Fatalf("Encode: %v", err)
				}
				if n := len(m.Identities); !bytes.Equal(frames[n], []byte(Delimiter)) {
					t.Fatalf("frame %d = %q, want the delimiter", n, frames[n])
				}
				got, err := Decode(frames, s, Limits{})
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if diff := cmp.Diff(m, got, msgOpts); diff != "" {
					t.Errorf("Decode(Encode(m)) mismatch (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestEncodeDefaults(t *testing.T) {
	m := &jmsg.Message{Header: header(jmsg.KernelInfoRequest)} // nil metadata, content, parent
	frames, err := Encode(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]byte{
		[]byte(Delimiter), {},
		nil, // header, checked below
		[]byte("{}"), []byte("{}"), []byte("{}"),
	}
	if len(frames) != len(want) {
		t.Fatalf("got %d frames, want %d: %q", len(frames), len(want), frames)
	}
	want[2] = frames[2]
	if diff := cmp.Diff(want, frames, msgOpts); diff != "" {
		t.Errorf("frames (-want +got):\n%s", diff)
	}
	var h map[string]string
	if err := json.Unmarshal(frames[2], &h); err != nil {
		t.Fatal(err)
	}
	wantH := map[string]string{
		"msg_id": m.Header.MsgID, "session": m.Header.Session, "username": m.Header.Username,
		"date": m.Header.Date, "msg_type": "kernel_info_request", "version": "5.3",
	}
	if diff := cmp.Diff(wantH, h); diff != "" {
		t.Errorf("header JSON (-want +got):\n%s", diff)
	}

	// JSON null is "no content" too.
	m.Content = json.RawMessage("null")
	frames, err = Encode(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(frames[5]); got != "{}" {
		t.Errorf("content null encoded as %q, want {}", got)
	}
}

func TestEncodeErrors(t *testing.T) {
	ok := func() *jmsg.Message {
		return &jmsg.Message{Header: header(jmsg.ExecuteRequest), Content: json.RawMessage(`{"code":"1"}`)}
	}
	for _, tc := range []struct {
		name         string
		m            *jmsg.Message
		part, reason string
	}{
		{"nil", nil, "message", "nil"},
		{"no msg_id", func() *jmsg.Message { m := ok(); m.Header.MsgID = ""; return m }(), "header", "msg_id missing"},
		{"no msg_type", func() *jmsg.Message { m := ok(); m.Header.MsgType = ""; return m }(), "header", "msg_type missing"},
		{"zero header", &jmsg.Message{}, "header", "msg_id missing"},
		{"content array", func() *jmsg.Message { m := ok(); m.Content = json.RawMessage(`[]`); return m }(), "content", "not a JSON object"},
		{"content invalid", func() *jmsg.Message { m := ok(); m.Content = json.RawMessage(`{"a":}`); return m }(), "content", "invalid JSON: invalid character '}' looking for beginning of value"},
		{"metadata string", func() *jmsg.Message { m := ok(); m.Metadata = json.RawMessage(`"x"`); return m }(), "metadata", "not a JSON object"},
		{"metadata trailing", func() *jmsg.Message { m := ok(); m.Metadata = json.RawMessage(`{}{}`); return m }(), "metadata", "invalid JSON: invalid character '{' after top-level value"},
		{"delimiter identity", func() *jmsg.Message {
			m := ok()
			m.Identities = [][]byte{[]byte("a"), []byte(Delimiter)}
			return m
		}(), "identities", "identity 1 is the delimiter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frames, err := Encode(tc.m, mustSigner(t, "", "k"))
			checkFrameError(t, err, tc.part, tc.reason, ErrMalformed)
			if frames != nil {
				t.Errorf("frames = %q, want nil on error", frames)
			}
		})
	}
}

func checkFrameError(t *testing.T, err error, part, reason string, sentinel error) {
	t.Helper()
	var fe *FrameError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v (%T), want *FrameError", err, err)
	}
	if fe.Part != part || fe.Reason != reason {
		t.Errorf("err = {Part: %q, Reason: %q}, want {%q, %q}", fe.Part, fe.Reason, part, reason)
	}
	if !errors.Is(err, sentinel) {
		t.Errorf("errors.Is(%v, %v) = false", err, sentinel)
	}
	for _, other := range []error{ErrBadSignature, ErrTooLarge, ErrMalformed} {
		if other != sentinel && errors.Is(err, other) {
			t.Errorf("errors.Is(%v, %v) = true, want only %v", err, other, sentinel)
		}
	}
	if want := "zmqwire: " + part + ": " + reason; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
}

// frameSet builds raw frames for Decode tests: ids, then the delimiter, a
// signature computed by s over the four JSON frames, and buffers.
func frameSet(s *Signer, ids []string, h, p, md, c string, bufs ...string) [][]byte {
	var frames [][]byte
	for _, id := range ids {
		frames = append(frames, []byte(id))
	}
	frames = append(frames, []byte(Delimiter), s.Sign([]byte(h), []byte(p), []byte(md), []byte(c)),
		[]byte(h), []byte(p), []byte(md), []byte(c))
	for _, b := range bufs {
		frames = append(frames, []byte(b))
	}
	return frames
}

const (
	goodHeader = `{"msg_id":"m1","msg_type":"stream","session":"s","username":"u","date":"d","version":"5.3"}`
	goodParent = `{"msg_id":"p1","msg_type":"execute_request","session":"s","username":"u","date":"d","version":"5.3"}`
	goodMeta   = `{}`
	goodCont   = `{"name":"stdout","text":"hi\n"}`
)

func TestDecodeErrors(t *testing.T) {
	key := mustSigner(t, "hmac-sha256", "secret")
	otherKey := mustSigner(t, "hmac-sha256", "not the secret")
	sha512 := mustSigner(t, "hmac-sha512", "secret")
	good := func() [][]byte { return frameSet(key, nil, goodHeader, goodParent, goodMeta, goodCont) }
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = "id"
		}
		return out
	}
	signed := func(h, p, md, c string) [][]byte { return frameSet(key, nil, h, p, md, c) }

	for _, tc := range []struct {
		name         string
		frames       [][]byte
		lim          Limits
		part, reason string
		sentinel     error
	}{
		// Structure.
		{"nil", nil, Limits{}, "delimiter", "missing", ErrMalformed},
		{"no delimiter", [][]byte{[]byte("a"), []byte("b")}, Limits{}, "delimiter", "missing", ErrMalformed},
		{"delimiter prefix only", [][]byte{[]byte("<IDS|MSG"), []byte("x")}, Limits{}, "delimiter", "missing", ErrMalformed},
		{"only delimiter", [][]byte{[]byte(Delimiter)}, Limits{}, "signature", "missing (1 of 6 frames from the delimiter on)", ErrMalformed},
		{"truncated after parent", good()[:4], Limits{}, "metadata", "missing (4 of 6 frames from the delimiter on)", ErrMalformed},
		{"truncated: no content", good()[:5], Limits{}, "content", "missing (5 of 6 frames from the delimiter on)", ErrMalformed},
		{"too many identities (default)", frameSet(key, ids(17), goodHeader, goodParent, goodMeta, goodCont), Limits{}, "identities", "17 identities before the delimiter, limit 16", ErrTooLarge},
		{"too many identities (custom)", frameSet(key, ids(3), goodHeader, goodParent, goodMeta, goodCont), Limits{MaxIdentities: 2}, "identities", "3 identities before the delimiter, limit 2", ErrTooLarge},

		// Limits, and that they come before the signature check.
		{"too many frames", frameSet(key, nil, goodHeader, goodParent, goodMeta, goodCont, "1", "2", "3"), Limits{MaxFrames: 8}, "frames", "9 frames, limit 8", ErrTooLarge},
		{"too many frames, bad signature", append(frameSet(otherKey, nil, goodHeader, goodParent, goodMeta, goodCont), make([][]byte, 10)...), Limits{MaxFrames: 8}, "frames", "16 frames, limit 8", ErrTooLarge},
		{"oversize frame", frameSet(key, nil, goodHeader, goodParent, goodMeta, goodCont, strings.Repeat("x", 201)), Limits{MaxFrameBytes: 200}, "frame", "frame 6 is 201 bytes, limit 200", ErrTooLarge},
		{"oversize identity", frameSet(key, []string{strings.Repeat("x", 201)}, goodHeader, goodParent, goodMeta, goodCont), Limits{MaxFrameBytes: 200}, "frame", "frame 0 is 201 bytes, limit 200", ErrTooLarge},
		{"oversize message", frameSet(key, nil, goodHeader, goodParent, goodMeta, goodCont, strings.Repeat("x", 150), strings.Repeat("x", 150)), Limits{MaxFrameBytes: 200, MaxMessageBytes: 500}, "message", "more than 500 bytes", ErrTooLarge},

		// Signature, and that it comes before any JSON parsing.
		{"bad signature", func() [][]byte { f := good(); f[2] = []byte(strings.Replace(goodHeader, "m1", "m2", 1)); return f }(), Limits{}, "signature", "mismatch", ErrBadSignature},
		{"wrong key", frameSet(otherKey, nil, goodHeader, goodParent, goodMeta, goodCont), Limits{}, "signature", "mismatch", ErrBadSignature},
		{"wrong scheme", frameSet(sha512, nil, goodHeader, goodParent, goodMeta, goodCont), Limits{}, "signature", "mismatch", ErrBadSignature},
		{"unsigned", frameSet(nil, nil, goodHeader, goodParent, goodMeta, goodCont), Limits{}, "signature", "missing", ErrBadSignature},
		{"upper-case signature", func() [][]byte { f := good(); f[1] = bytes.ToUpper(f[1]); return f }(), Limits{}, "signature", "mismatch", ErrBadSignature},
		{"invalid JSON, bad signature", frameSet(otherKey, nil, `{`, `{`, `x`, `]`), Limits{}, "signature", "mismatch", ErrBadSignature},
		{"frames shifted", func() [][]byte { f := good(); return append(f[:3], f[4:]...) }(), Limits{}, "content", "missing (5 of 6 frames from the delimiter on)", ErrMalformed},

		// JSON.
		{"header invalid JSON", signed(`{"msg_id":`, goodParent, goodMeta, goodCont), Limits{}, "header", "invalid JSON: unexpected end of JSON input", ErrMalformed},
		{"header not object", signed(`["msg_id"]`, goodParent, goodMeta, goodCont), Limits{}, "header", "not a JSON object", ErrMalformed},
		{"header null", signed(`null`, goodParent, goodMeta, goodCont), Limits{}, "header", "not a JSON object", ErrMalformed},
		{"header empty", signed(``, goodParent, goodMeta, goodCont), Limits{}, "header", "not a JSON object", ErrMalformed},
		{"header wrong type", signed(`{"msg_id":1,"msg_type":"x"}`, goodParent, goodMeta, goodCont), Limits{}, "header", "msg_id: JSON number, want a string", ErrMalformed},
		{"parent wrong type", signed(goodHeader, `{"msg_type":["x"]}`, goodMeta, goodCont), Limits{}, "parent", "msg_type: JSON array, want a string", ErrMalformed},
		{"header trailing garbage", signed(goodHeader+`x`, goodParent, goodMeta, goodCont), Limits{}, "header", "invalid JSON: invalid character 'x' after top-level value", ErrMalformed},
		{"missing msg_type", signed(`{"msg_id":"m1","session":"s"}`, goodParent, goodMeta, goodCont), Limits{}, "header", "msg_type missing", ErrMalformed},
		{"empty msg_type", signed(`{"msg_id":"m1","msg_type":""}`, goodParent, goodMeta, goodCont), Limits{}, "header", "msg_type missing", ErrMalformed},
		{"missing msg_id", signed(`{"msg_type":"stream"}`, goodParent, goodMeta, goodCont), Limits{}, "header", "msg_id missing", ErrMalformed},
		{"empty header object", signed(`{}`, goodParent, goodMeta, goodCont), Limits{}, "header", "msg_id missing", ErrMalformed},
		{"parent invalid JSON", signed(goodHeader, `{"msg_id":"p1"`, goodMeta, goodCont), Limits{}, "parent", "invalid JSON: unexpected end of JSON input", ErrMalformed},
		{"parent null", signed(goodHeader, `null`, goodMeta, goodCont), Limits{}, "parent", "not a JSON object", ErrMalformed},
		{"metadata not object", signed(goodHeader, goodParent, `"x"`, goodCont), Limits{}, "metadata", "not a JSON object", ErrMalformed},
		{"metadata empty", signed(goodHeader, goodParent, ``, goodCont), Limits{}, "metadata", "not a JSON object", ErrMalformed},
		{"content array", signed(goodHeader, goodParent, goodMeta, `[1,2]`), Limits{}, "content", "not a JSON object", ErrMalformed},
		{"content number", signed(goodHeader, goodParent, goodMeta, `2`), Limits{}, "content", "not a JSON object", ErrMalformed},
		{"content whitespace", signed(goodHeader, goodParent, goodMeta, " \n\t"), Limits{}, "content", "not a JSON object", ErrMalformed},
		{"content invalid JSON", signed(goodHeader, goodParent, goodMeta, `{"text":"hi}`), Limits{}, "content", "invalid JSON: unexpected end of JSON input", ErrMalformed},
		{"content two objects", signed(goodHeader, goodParent, goodMeta, `{} {}`), Limits{}, "content", "invalid JSON: invalid character '{' after top-level value", ErrMalformed},
		{"content bad escape", signed(goodHeader, goodParent, goodMeta, `{"t":"\q"}`), Limits{}, "content", `invalid JSON: invalid character 'q' in string escape code`, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Decode(tc.frames, key, tc.lim)
			if m != nil {
				t.Errorf("message = %+v, want nil on error", m)
			}
			checkFrameError(t, err, tc.part, tc.reason, tc.sentinel)
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	key := mustSigner(t, "hmac-sha256", "secret")
	noKey := mustSigner(t, "hmac-sha256", "")
	for _, tc := range []struct {
		name   string
		frames [][]byte
		s      *Signer
		lim    Limits
		want   *jmsg.Message
	}{
		{
			name:   "empty key accepts unsigned",
			frames: frameSet(nil, nil, goodHeader, `{}`, goodMeta, goodCont),
			s:      noKey,
			want: &jmsg.Message{
				Header:   jmsg.Header{MsgID: "m1", MsgType: "stream", Session: "s", Username: "u", Date: "d", Version: "5.3"},
				Metadata: json.RawMessage(goodMeta), Content: json.RawMessage(goodCont),
			},
		},
		{
			name:   "nil signer ignores a signature",
			frames: frameSet(key, nil, goodHeader, `{}`, goodMeta, goodCont),
			s:      nil,
			want: &jmsg.Message{
				Header:   jmsg.Header{MsgID: "m1", MsgType: "stream", Session: "s", Username: "u", Date: "d", Version: "5.3"},
				Metadata: json.RawMessage(goodMeta), Content: json.RawMessage(goodCont),
			},
		},
		{
			name:   "limits exactly met",
			frames: frameSet(key, []string{"a", "b"}, goodHeader, goodParent, goodMeta, goodCont, "buf"),
			s:      key,
			lim:    Limits{MaxFrames: 9, MaxIdentities: 2, MaxFrameBytes: len(goodParent), MaxMessageBytes: 2 + len(Delimiter) + 64 + len(goodHeader) + len(goodParent) + len(goodMeta) + len(goodCont) + 3},
			want: &jmsg.Message{
				Identities: [][]byte{[]byte("a"), []byte("b")},
				Header:     jmsg.Header{MsgID: "m1", MsgType: "stream", Session: "s", Username: "u", Date: "d", Version: "5.3"},
				Parent:     jmsg.Header{MsgID: "p1", MsgType: "execute_request", Session: "s", Username: "u", Date: "d", Version: "5.3"},
				Metadata:   json.RawMessage(goodMeta), Content: json.RawMessage(goodCont),
				Buffers: [][]byte{[]byte("buf")},
			},
		},
		{
			name: "unknown header fields and parent fields ignored, whitespace kept",
			frames: frameSet(key, nil, ` {"msg_id":"m1","msg_type":"x","subshell_id":null,"extra":{"a":[1]}}`,
				`{"unknown":1}`, "\t{ }", "\n{\"a\": 1}\n"),
			s: key,
			want: &jmsg.Message{
				Header:   jmsg.Header{MsgID: "m1", MsgType: "x"},
				Metadata: json.RawMessage("\t{ }"), Content: json.RawMessage("\n{\"a\": 1}\n"),
			},
		},
		{
			name:   "negative limits mean defaults",
			frames: frameSet(key, nil, goodHeader, `{}`, goodMeta, goodCont),
			s:      key,
			lim:    Limits{MaxFrames: -1, MaxIdentities: -1, MaxFrameBytes: -1, MaxMessageBytes: -1},
			want: &jmsg.Message{
				Header:   jmsg.Header{MsgID: "m1", MsgType: "stream", Session: "s", Username: "u", Date: "d", Version: "5.3"},
				Metadata: json.RawMessage(goodMeta), Content: json.RawMessage(goodCont),
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.frames, tc.s, tc.lim)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(tc.want, got, msgOpts); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// A 64 MiB print must pass the default limits (and its frames are aliased,
// not copied).
func TestDecodeLargeOutputDefaultLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates ~130 MiB")
	}
	s := mustSigner(t, "", "secret")
	// Built by hand rather than with json.Marshal and Encode, which would
	// only make the test slower (especially under -race).
	var b bytes.Buffer
	b.WriteString(`{"name":"stdout","text":"`)
	for range (64 << 20) / 16 {
		b.WriteString(`0123456789abcd\n`)
	}
	b.WriteString(`"}`)
	content := b.Bytes()
	frames := frameSet(s, nil, goodHeader, goodParent, goodMeta, "")
	frames[5] = content
	frames[1] = s.Sign(frames[2], frames[3], frames[4], frames[5])
	m, err := Decode(frames, s, Limits{})
	if err != nil {
		t.Fatalf("Decode of a %d-byte stream message: %v", len(content), err)
	}
	if &m.Content[0] != &frames[5][0] {
		t.Error("Content was copied; Decode is documented to alias the frames")
	}
}

func TestDefaultLimits(t *testing.T) {
	want := Limits{MaxFrames: 4096, MaxIdentities: 16, MaxFrameBytes: 256 << 20, MaxMessageBytes: 256 << 20}
	if diff := cmp.Diff(want, DefaultLimits()); diff != "" {
		t.Errorf("DefaultLimits (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, Limits{}.withDefaults()); diff != "" {
		t.Errorf("zero Limits (-want +got):\n%s", diff)
	}
}

// The outer Identities and Buffers slices are Decode's own, so appending to
// them cannot write into the caller's frames.
func TestDecodeOuterSlicesNotShared(t *testing.T) {
	s := mustSigner(t, "", "k")
	frames := frameSet(s, []string{"id"}, goodHeader, goodParent, goodMeta, goodCont, "b1")
	frames = append(frames[:len(frames):len(frames)], nil)[:len(frames)] // spare capacity
	m, err := Decode(frames, s, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	m.Identities = append(m.Identities, []byte("evil"))
	m.Buffers = append(m.Buffers, []byte("evil"))
	if string(frames[1]) != Delimiter || frames[:cap(frames)][len(frames)] != nil {
		t.Error("appending to the decoded message changed the input frames")
	}
}
