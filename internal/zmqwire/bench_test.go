package zmqwire

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kernelgate/kernelgate/internal/jmsg"
)

// streamMessage is a typical iopub stream message as ipykernel sends it:
// topic identity, full header and parent, a line or two of output.
func streamMessage(b *testing.B) *jmsg.Message {
	content, err := json.Marshal(jmsg.StreamContent{Name: "stdout", Text: strings.Repeat("epoch 3/10 loss=0.1234 acc=0.9876\n", 4)})
	if err != nil {
		b.Fatal(err)
	}
	return &jmsg.Message{
		Identities: [][]byte{[]byte("stream.stdout")},
		Header:     header(jmsg.Stream),
		Parent:     header(jmsg.ExecuteRequest),
		Metadata:   json.RawMessage(`{}`),
		Content:    content,
	}
}

func frameBytes(frames [][]byte) int64 {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	return int64(n)
}

func BenchmarkEncode(b *testing.B) {
	s := mustSigner(b, "hmac-sha256", "bench-key")
	m := streamMessage(b)
	frames, err := Encode(m, s)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(frameBytes(frames))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(m, s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	s := mustSigner(b, "hmac-sha256", "bench-key")
	frames, err := Encode(streamMessage(b), s)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(frameBytes(frames))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(frames, s, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}
