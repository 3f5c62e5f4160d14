package kernel

import (
	"strings"
	"testing"

	"github.com/kernelgate/kernelgate/internal/bootstrap"
	"github.com/kernelgate/kernelgate/internal/jmsg"
	"github.com/kernelgate/kernelgate/internal/zmqconn"
)

func TestInputOrder(t *testing.T) {
	parent := jmsg.NewHeader(jmsg.ExecuteRequest, "s", "u")
	msg := func(ch jmsg.Channel, typ string) zmqconn.Incoming {
		m, err := jmsg.New(typ, "s", "u", &parent, struct{}{})
		if err != nil {
			t.Fatal(err)
		}
		return zmqconn.Incoming{Channel: ch, Msg: m}
	}
	stream := msg(jmsg.IOPub, jmsg.Stream)
	marker := msg(jmsg.IOPub, bootstrap.InputMarker)
	prompt := msg(jmsg.Stdin, jmsg.InputRequest)
	tests := []struct {
		name    string
		arrive  []zmqconn.Incoming
		release bool // the test calls release at the end (the hold timed out)
		want    string
	}{
		{"marker first: prompt passes at once", []zmqconn.Incoming{stream, marker, prompt}, false, "stream input_request"},
		{"prompt overtakes the output: held until the marker", []zmqconn.Incoming{prompt, stream, marker}, false, "stream input_request"},
		{"no marker (no bootstrap): held until released", []zmqconn.Incoming{stream, prompt}, true, "stream input_request"},
		{"no marker, not yet released: still held", []zmqconn.Incoming{prompt}, false, ""},
		{"a marker serves one prompt only", []zmqconn.Incoming{marker, prompt, prompt}, false, "input_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o inputOrder
			var got []string
			handle := func(in zmqconn.Incoming) { got = append(got, in.Msg.Type()) }
			for _, in := range tt.arrive {
				o.admit(in, handle)
			}
			if tt.release {
				o.release(handle)
			}
			if strings.Join(got, " ") != tt.want {
				t.Fatalf("handled %q, want %q", strings.Join(got, " "), tt.want)
			}
		})
	}
}
