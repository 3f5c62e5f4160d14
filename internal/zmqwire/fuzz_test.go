package zmqwire

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/kernelgate/kernelgate/internal/jmsg"
)

// The fuzz targets use small limits so that the fuzzer reaches them.
var fuzzLimits = Limits{MaxFrames: 64, MaxIdentities: 4, MaxFrameBytes: 1 << 14, MaxMessageBytes: 1 << 15}

const fuzzKey = "fuzz-key"

// joinFrames and splitFrames define FuzzDecode's input: each frame is a
// uvarint length followed by that many bytes. A length past the end takes
// the rest of the input, and a bad uvarint makes the rest one frame, so
// every input is some frame list.
func joinFrames(frames [][]byte) []byte {
	var out []byte
	for _, f := range frames {
		out = binary.AppendUvarint(out, uint64(len(f)))
		out = append(out, f...)
	}
	return out
}

func splitFrames(data []byte) [][]byte {
	var frames [][]byte
	for len(data) > 0 {
		n, k := binary.Uvarint(data)
		if k <= 0 {
			return append(frames, data)
		}
		data = data[k:]
		if n > uint64(len(data)) {
			n = uint64(len(data))
		}
		frames = append(frames, data[:n:n])
		data = data[n:]
	}
	return frames
}

// FuzzDecode checks that Decode never panics, that what it accepts is a
// valid message within the limits, and that an accepted message survives
// Encode and Decode unchanged. keyed selects signature checking with
// fuzzKey; the seeds include the golden recordings both raw (unkeyed, so
// the parser sees real kernel bytes) and re-signed with fuzzKey.
func FuzzDecode(f *testing.F) {
	s := mustSigner(f, "hmac-sha256", fuzzKey)
	for _, g := range loadGolden(f) {
		f.Add(joinFrames(g.frames), false)
		resigned := append([][]byte(nil), g.frames...)
		for i, fr := range resigned {
			if string(fr) == Delimiter && i+5 < len(resigned) {
				resigned[i+1] = s.Sign(resigned[i+2], resigned[i+3], resigned[i+4], resigned[i+5])
				break
			}
		}
		f.Add(joinFrames(resigned), true)
	}
	for _, frames := range [][][]byte{
		nil,
		{[]byte(Delimiter)},
		frameSet(s, []string{"a", "b", "c", "d", "e"}, goodHeader, goodParent, goodMeta, goodCont),
		frameSet(s, nil, goodHeader, `{}`, goodMeta, goodCont, "", Delimiter),
		frameSet(s, nil, `{"msg_id":"m","msg_type":1}`, `{}`, `{}`, `{}`),
		frameSet(s, nil, goodHeader, `{}`, `{}`, `{"a":"\ud800\u00e9"}`),
	} {
		f.Add(joinFrames(frames), true)
		f.Add(joinFrames(frames), false)
	}

	f.Fuzz(func(t *testing.T, data []byte, keyed bool) {
		signer := s
		if !keyed {
			signer = nil
		}
		frames := splitFrames(data)
		m, err := Decode(frames, signer, fuzzLimits)
		if err != nil {
			var fe *FrameError
			if !errors.As(err, &fe) || !(errors.Is(err, ErrMalformed) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrBadSignature)) {
				t.Fatalf("Decode error %v (%T) is not a classified *FrameError", err, err)
			}
			if m != nil {
				t.Fatal("Decode returned a message with an error")
			}
			return
		}
		if m.Header.MsgID == "" || m.Header.MsgType == "" {
			t.Fatalf("accepted header without msg_id/msg_type: %+v", m.Header)
		}
		if len(m.Identities) > fuzzLimits.MaxIdentities {
			t.Fatalf("accepted %d identities", len(m.Identities))
		}
		for _, raw := range []json.RawMessage{m.Metadata, m.Content} {
			var obj map[string]any
			if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
				t.Fatalf("accepted %q as a JSON object: %v", raw, err)
			}
		}

		again, err := Encode(m, signer)
		if err != nil {
			t.Fatalf("Encode of a decoded message: %v", err)
		}
		// Default limits: re-encoding may grow the header (escaping).
		m2, err := Decode(again, signer, Limits{})
		if err != nil {
			t.Fatalf("Decode(Encode(m)): %v", err)
		}
		if diff := cmp.Diff(m, m2, msgOpts); diff != "" {
			t.Fatalf("Decode(Encode(m)) mismatch (-want +got):\n%s", diff)
		}
	})
}

// FuzzRoundTrip checks that whatever Encode accepts, Decode returns
// unchanged (bar the documented normalisations), and that a different key
// is always rejected.
func FuzzRoundTrip(f *testing.F) {
	f.Add("m1", "stream", "s", "p1", []byte("kernel.x.stream"), []byte(goodMeta), []byte(goodCont), []byte{0, 1}, true)
	f.Add("m1", "status", "", "", []byte(nil), []byte(nil), []byte("null"), []byte(nil), false)
	f.Add("<b>&", "x\u2028", "\x00", "\"", []byte(Delimiter), []byte("{}"), []byte(`[]`), []byte(Delimiter), true)
	for _, g := range loadGolden(f) {
		if m, err := Decode(g.frames, g.signer, Limits{}); err == nil {
			var id, buf []byte
			if len(m.Identities) > 0 {
				id = m.Identities[0]
			}
			if len(m.Buffers) > 0 {
				buf = m.Buffers[0]
			}
			f.Add(m.Header.MsgID, m.Header.MsgType, m.Header.Session, m.Parent.MsgID, id, []byte(m.Metadata), []byte(m.Content), buf, true)
		}
	}
	s := mustSigner(f, "hmac-sha256", fuzzKey)
	other := mustSigner(f, "hmac-sha256", fuzzKey+"x")

	f.Fuzz(func(t *testing.T, msgID, msgType, session, parentID string, ident, metadata, content, buf []byte, keyed bool) {
		for _, str := range []string{msgID, msgType, session, parentID} {
			if !utf8.ValidString(str) {
				t.Skip("encoding/json replaces invalid UTF-8; not a round trip")
			}
		}
		signer := s
		if !keyed {
			signer = nil
		}
		m := &jmsg.Message{
			Header:   jmsg.Header{MsgID: msgID, MsgType: msgType, Session: session, Version: jmsg.ProtocolVersion},
			Metadata: metadata,
			Content:  content,
		}
		if parentID != "" {
			m.Parent = jmsg.Header{MsgID: parentID, MsgType: jmsg.ExecuteRequest}
		}
		if len(ident) > 0 {
			m.Identities = [][]byte{ident}
		}
		if buf != nil {
			m.Buffers = [][]byte{buf}
		}
		frames, err := Encode(m, signer)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Encode error %v is not ErrMalformed", err)
			}
			return
		}
		got, err := Decode(frames, signer, Limits{})
		if err != nil {
			t.Fatalf("Decode(Encode(m)): %v\nframes: %q", err, frames)
		}
		want := *m
		want.Metadata = jmsg.ObjectOrEmpty(m.Metadata)
		want.Content = jmsg.ObjectOrEmpty(m.Content)
		if diff := cmp.Diff(&want, got, msgOpts); diff != "" {
			t.Fatalf("Decode(Encode(m)) mismatch (-want +got):\n%s", diff)
		}
		if keyed {
			if _, err := Decode(frames, other, Limits{}); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("Decode with another key: err = %v, want ErrBadSignature", err)
			}
		}
	})
}
