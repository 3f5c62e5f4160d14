package wsproto

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kernelgate/kernelgate/internal/jmsg"
)

// plain is a message as JSON values, for comparing across languages.
type plain struct {
	Channel  string         `json:"channel"`
	Header   map[string]any `json:"header"`
	Parent   map[string]any `json:"parent_header"`
	Metadata map[string]any `json:"metadata"`
	Content  map[string]any `json:"content"`
	Buffers  []string       `json:"buffers"` // base64
}

func toPlain(t *testing.T, ch jmsg.Channel, m *jmsg.Message) plain {
	t.Helper()
	p := plain{Channel: string(ch), Buffers: []string{}}
	for _, f := range []struct {
		v   any
		dst *map[string]any
	}{{m.Header, &p.Header}, {m.Parent, &p.Parent}, {jmsg.ObjectOrEmpty(m.Metadata), &p.Metadata}, {jmsg.ObjectOrEmpty(m.Content), &p.Content}} {
		b, err := json.Marshal(f.v)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, f.dst); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range m.Buffers {
		p.Buffers = append(p.Buffers, base64.StdEncoding.EncodeToString(b))
	}
	return p
}

type golden struct {
	Name    string `json:"name"`
	Framing string `json:"framing"`
	Frame   []byte `json:"frame"`
	Want    plain  `json:"want"`
}

func decode(framing string, frame []byte) (jmsg.Channel, *jmsg.Message, error) {
	switch framing {
	case "v1":
		return DecodeClientFrame(frame, true, true)
	case "legacy-binary":
		return DecodeClientFrame(frame, true, false)
	default:
		return DecodeClientFrame(frame, false, false)
	}
}

// TestDecodeGolden decodes frames written by Jupyter Server's own
// serializers (testdata/record.py).
func TestDecodeGolden(t *testing.T) {
	raw, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []golden
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 8 {
		t.Fatalf("golden.json has %d frames; want the 8 record.py writes", len(cases))
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			ch, m, err := decode(c.Framing, c.Frame)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if diff := cmp.Diff(c.Want, toPlain(t, ch, m)); diff != "" {
				t.Errorf("decoded message (-want +got):\n%s", diff)
			}
		})
	}
}

func kernelMessages() []struct {
	ch jmsg.Channel
	m  *jmsg.Message
} {
	h := jmsg.Header{MsgID: "k-1", Session: "kernel-s", Username: "kernel", Date: "2026-11-26T12:00:00.000000Z", MsgType: "stream", Version: "5.3"}
	parent := jmsg.Header{MsgID: "m-exec", Session: "client-session-1", Username: "alice", MsgType: "execute_request", Version: "5.3"}
	reply := h
	reply.MsgID, reply.MsgType = "k-2", "execute_reply"
	comm := h
	comm.MsgID, comm.MsgType = "k-3", "comm_msg"
	return []struct {
		ch jmsg.Channel
		m  *jmsg.Message
	}{
		{jmsg.IOPub, &jmsg.Message{Header: h, Parent: parent, Content: json.RawMessage(`{"name":"stdout","text":"h\u00e9llo \"quoted\"\n"}`)}},
		{jmsg.Shell, &jmsg.Message{Header: reply, Parent: parent, Metadata: json.RawMessage(`{"started":"x"}`), Content: json.RawMessage(`{"status":"ok","execution_count":3}`)}},
		{jmsg.IOPub, &jmsg.Message{Header: comm, Content: json.RawMessage(`{"comm_id":"c1","data":{}}`), Buffers: [][]byte{{0, 1, 2}, {}, []byte("tail")}}},
	}
}

// TestEncodeReadByJupyterServer has Jupyter Server's own deserializers
// parse what the encoders write, in every framing.
func TestEncodeReadByJupyterServer(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Fatalf("needs /usr/bin/python3 with python3-jupyter-server (make test-deps): %v", err)
	}
	type frame struct {
		Framing string `json:"framing"`
		Frame   []byte `json:"frame"`
	}
	var frames []frame
	var want []plain
	for _, km := range kernelMessages() {
		v1, err := EncodeV1(km.ch, km.m)
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, frame{"v1", v1})
		want = append(want, toPlain(t, km.ch, km.m))
		legacy, bin, err := EncodeLegacy(km.ch, km.m)
		if err != nil {
			t.Fatal(err)
		}
		if bin != (len(km.m.Buffers) > 0) {
			t.Errorf("%s: binary frame = %v, want it exactly for messages with buffers", km.m.Header.MsgType, bin)
		}
		kind := "legacy-text"
		if bin {
			kind = "legacy-binary"
		}
		frames = append(frames, frame{kind, legacy})
		want = append(want, toPlain(t, km.ch, km.m))
	}
	path := filepath.Join(t.TempDir(), "frames.json")
	b, _ := json.Marshal(frames)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("/usr/bin/python3", "testdata/record.py", "check", path).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("record.py check: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var got []plain
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("record.py output: %v\n%s", err, out)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("as Jupyter Server parses our frames (-want +got):\n%s", diff)
	}
}

// TestRoundTrip: what EncodeV1 writes for a client channel, DecodeClientFrame reads
// back unchanged, content bytes included.
func TestRoundTrip(t *testing.T) {
	for _, km := range kernelMessages() {
		ch := jmsg.Shell
		frame, err := EncodeV1(ch, km.m)
		if err != nil {
			t.Fatal(err)
		}
		gotCh, got, err := DecodeClientFrame(frame, true, true)
		if err != nil {
			t.Fatalf("%s: %v", km.m.Header.MsgType, err)
		}
		if gotCh != ch || !bytes.Equal(got.Content, km.m.Content) {
			t.Errorf("%s: round trip gave channel %q content %s", km.m.Header.MsgType, gotCh, got.Content)
		}
		if diff := cmp.Diff(toPlain(t, ch, km.m), toPlain(t, gotCh, got)); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
}

func v1Frame(parts ...string) []byte {
	var out []byte
	n := len(parts) + 1
	out = binary.LittleEndian.AppendUint64(out, uint64(n))
	off := uint64(8 * (n + 1))
	out = binary.LittleEndian.AppendUint64(out, off)
	for _, p := range parts {
		off += uint64(len(p))
		out = binary.LittleEndian.AppendUint64(out, off)
	}
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestDecodeErrors(t *testing.T) {
	okHeader := `{"msg_id":"a","msg_type":"execute_request","session":"s","username":"u","version":"5.3"}`
	tooManyOffsets := binary.LittleEndian.AppendUint64(nil, 1<<40)
	lastOffsetWrong := v1Frame("shell", okHeader, "{}", "{}", "{}")
	binary.LittleEndian.PutUint64(lastOffsetWrong[8*6:], 5)
	for _, c := range []struct {
		name    string
		framing string
		frame   []byte
		want    string
	}{
		{"text not JSON", "legacy-text", []byte("{not json"), "not a JSON message object"},
		{"text array", "legacy-text", []byte("[1,2]"), "not a JSON message object"},
		{"iopub from client", "legacy-text", []byte(`{"channel":"iopub","header":` + okHeader + `}`), `channel "iopub"`},
		{"unknown channel", "legacy-text", []byte(`{"channel":"bogus","header":` + okHeader + `}`), `channel "bogus"`},
		{"no header", "legacy-text", []byte(`{"channel":"shell","content":{}}`), "header is not a JSON object"},
		{"no msg_id", "legacy-text", []byte(`{"header":{"msg_type":"x"}}`), "msg_id and msg_type"},
		{"msg_id a number", "legacy-text", []byte(`{"header":{"msg_id":5,"msg_type":"x"}}`), "header.msg_id is JSON number"},
		{"content a string", "legacy-text", []byte(`{"header":` + okHeader + `,"content":"x"}`), "content is not a JSON object"},
		{"binary short", "legacy-binary", []byte{0, 0}, "too short"},
		{"binary zero parts", "legacy-binary", []byte{0, 0, 0, 0}, "names 0 parts"},
		{"binary offsets beyond", "legacy-binary", []byte{0, 0, 0, 1, 0, 0, 0, 200}, "spans bytes"},
		{"binary offset in table", "legacy-binary", []byte{0, 0, 0, 1, 0, 0, 0, 0}, "inside the offset table"},
		{"v1 short", "v1", []byte{1, 2, 3}, "too short"},
		{"v1 huge count", "v1", tooManyOffsets, "offsets; want 6 to"},
		{"v1 too few parts", "v1", v1Frame("shell", okHeader), "offsets; want 6 to"},
		{"v1 last offset", "v1", lastOffsetWrong, "last offset"},
		{"v1 hb channel", "v1", v1Frame("hb", okHeader, "{}", "{}", "{}"), `channel "hb"`},
		{"v1 bad parent", "v1", v1Frame("shell", okHeader, "[]", "{}", "{}"), "parent_header is not a JSON object"},
		{"v1 bad metadata", "v1", v1Frame("shell", okHeader, "{}", "{x", "{}"), "metadata is not a JSON object"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := decode(c.framing, c.frame)
			if err == nil {
				t.Fatal("decoded; want an error")
			}
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q; want ErrMalformed saying %q", err, c.want)
			}
		})
	}
}

func TestMissingChannelMeansShell(t *testing.T) {
	ch, m, err := DecodeClientFrame([]byte(`{"header":{"msg_id":"a","msg_type":"kernel_info_request"},"parent_header":null,"content":null}`), false, false)
	if err != nil {
		t.Fatal(err)
	}
	if ch != jmsg.Shell || string(m.Content) != "{}" || !m.Parent.IsZero() {
		t.Errorf("got channel %q content %s parent %+v; want shell, {}, no parent", ch, m.Content, m.Parent)
	}
}

func fuzzSeeds(f *testing.F) {
	raw, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		f.Fatal(err)
	}
	var cases []golden
	if err := json.Unmarshal(raw, &cases); err != nil {
		f.Fatal(err)
	}
	for _, c := range cases {
		f.Add(c.Frame)
	}
}

// checkDecoded: whatever decodes must encode and decode back to itself.
func checkDecoded(t *testing.T, ch jmsg.Channel, m *jmsg.Message) {
	frame, err := EncodeV1(ch, m)
	if err != nil {
		t.Fatalf("encode a decoded message: %v", err)
	}
	ch2, m2, err := DecodeServerFrame(frame, true, true) // the wider side: every channel either accepts
	if err != nil {
		t.Fatalf("decode our own encoding: %v", err)
	}
	if ch2 != ch || m2.Header != m.Header || m2.Parent != m.Parent ||
		!bytes.Equal(m2.Content, m.Content) || !bytes.Equal(m2.Metadata, m.Metadata) || len(m2.Buffers) != len(m.Buffers) {
		t.Fatalf("round trip changed the message")
	}
}

func FuzzDecodeV1(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, dec := range []func([]byte, bool, bool) (jmsg.Channel, *jmsg.Message, error){DecodeClientFrame, DecodeServerFrame} {
			if ch, m, err := dec(b, true, true); err == nil {
				checkDecoded(t, ch, m)
			} else if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
		}
	})
}

func FuzzDecodeLegacy(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, binaryFrame := range []bool{false, true} {
			if ch, m, err := DecodeClientFrame(b, binaryFrame, false); err == nil {
				checkDecoded(t, ch, m)
			} else if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
		}
	})
}

// A kernel's header bytes are forwarded as they are: fields the model does
// not name (here a subshell id) reach the client, in both framings.
func TestKernelHeaderForwardedAsIs(t *testing.T) {
	raw := json.RawMessage(`{"msg_id":"k-9","msg_type":"stream","session":"s","username":"u","date":"d","version":"5.4","subshell_id":"sub-1"}`)
	m := &jmsg.Message{Header: jmsg.Header{MsgID: "k-9", MsgType: "stream", Session: "s", Username: "u", Date: "d", Version: "5.4"},
		RawHeader: raw, RawParent: json.RawMessage(`{}`), Content: json.RawMessage(`{"name":"stdout","text":"x"}`)}
	v1, err := EncodeV1(jmsg.IOPub, m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(v1, raw) {
		t.Errorf("v1 frame does not carry the kernel's header bytes")
	}
	legacy, _, err := EncodeLegacy(jmsg.IOPub, m)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Header map[string]string `json:"header"`
	}
	if err := json.Unmarshal(legacy, &got); err != nil || got.Header["subshell_id"] != "sub-1" {
		t.Errorf("legacy frame header %v (%v); want the kernel's, subshell_id included", got.Header, err)
	}
}

// What the encoders write, DecodeServerFrame reads back, iopub included,
// in every framing; a server channel the client side refuses is accepted.
func TestDecodeServerFrame(t *testing.T) {
	for _, km := range kernelMessages() {
		v1, err := EncodeV1(km.ch, km.m)
		if err != nil {
			t.Fatal(err)
		}
		legacy, bin, err := EncodeLegacy(km.ch, km.m)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []struct {
			name              string
			data              []byte
			binaryFrame, isV1 bool
		}{{"v1", v1, true, true}, {"legacy", legacy, bin, false}} {
			ch, m, err := DecodeServerFrame(f.data, f.binaryFrame, f.isV1)
			if err != nil {
				t.Fatalf("%s %s: %v", km.m.Type(), f.name, err)
			}
			if diff := cmp.Diff(toPlain(t, km.ch, km.m), toPlain(t, ch, m)); diff != "" {
				t.Errorf("%s %s (-want +got):\n%s", km.m.Type(), f.name, diff)
			}
		}
	}
	if _, _, err := DecodeServerFrame(v1Frame("hb", `{"msg_id":"a","msg_type":"x"}`, "{}", "{}", "{}"), true, true); !errors.Is(err, ErrMalformed) {
		t.Errorf("hb from a server: %v; want ErrMalformed", err)
	}
}
