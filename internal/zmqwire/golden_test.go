package zmqwire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kernelgate/kernelgate/internal/jmsg"
)

// goldenFile is one recording made by testdata/record.py from a real
// ipykernel.
type goldenFile struct {
	Kernel   string `json:"kernel"`
	Key      string `json:"key"`
	Scheme   string `json:"scheme"`
	Messages []struct {
		Step      string   `json:"step"`
		Channel   string   `json:"channel"`
		Direction string   `json:"direction"` // recv: from the kernel; send: made by jupyter_client
		FramesB64 []string `json:"frames_b64"`
	} `json:"messages"`
}

type goldenMessage struct {
	file, step, channel, direction string
	frames                         [][]byte
	signer                         *Signer
}

func loadGolden(tb testing.TB) []goldenMessage {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "golden", "*.json"))
	if err != nil {
		tb.Fatal(err)
	}
	if len(paths) == 0 {
		tb.Fatal("no golden files; run testdata/record.py")
	}
	var out []goldenMessage
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		var g goldenFile
		if err := json.Unmarshal(data, &g); err != nil {
			tb.Fatalf("%s: %v", p, err)
		}
		s, err := NewSigner(g.Scheme, []byte(g.Key))
		if err != nil {
			tb.Fatalf("%s: %v", p, err)
		}
		for _, m := range g.Messages {
			gm := goldenMessage{file: filepath.Base(p), step: m.Step, channel: m.Channel, direction: m.Direction, signer: s}
			for _, f := range m.FramesB64 {
				b, err := base64.StdEncoding.DecodeString(f)
				if err != nil {
					tb.Fatalf("%s: %v", p, err)
				}
				gm.frames = append(gm.frames, b)
			}
			out = append(out, gm)
		}
	}
	return out
}

func TestGolden(t *testing.T) {
	golden := loadGolden(t)
	// seen[file][channel+" "+msg_type] lists the decoded messages.
	seen := map[string]map[string][]*jmsg.Message{}
	for i, g := range golden {
		m, err := Decode(g.frames, g.signer, Limits{})
		if err != nil {
			t.Errorf("%s #%d (%s %s %s): Decode: %v", g.file, i, g.step, g.direction, g.channel, err)
			continue
		}
		if n := len(m.Identities); !bytes.Equal(m.RawHeader, g.frames[n+2]) || !bytes.Equal(m.RawParent, g.frames[n+3]) {
			t.Errorf("%s #%d: RawHeader/RawParent are not the kernel's frames", g.file, i)
		}
		if seen[g.file] == nil {
			seen[g.file] = map[string][]*jmsg.Message{}
		}
		k := g.channel + " " + m.Type()
		seen[g.file][k] = append(seen[g.file][k], m)

		// Any other key must fail, and must fail as a signature error.
		wrong := mustSigner(t, g.signer.Scheme(), "wrong key")
		if _, err := Decode(g.frames, wrong, Limits{}); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s #%d: Decode with wrong key: err = %v, want ErrBadSignature", g.file, i, err)
		}

		// Re-encoding is not byte-identical (Python's json puts spaces
		// after separators and orders keys differently), but it must verify
		// and decode to the same message, and the header must keep every
		// field the kernel sent.
		frames, err := Encode(m, g.signer)
		if err != nil {
			t.Errorf("%s #%d: Encode: %v", g.file, i, err)
			continue
		}
		n := len(m.Identities)
		if !g.signer.Verify(frames[n+1], frames[n+2], frames[n+3], frames[n+4], frames[n+5]) {
			t.Errorf("%s #%d: re-encoded signature does not verify", g.file, i)
		}
		m2, err := Decode(frames, g.signer, Limits{})
		if err != nil {
			t.Errorf("%s #%d: Decode(Encode(m)): %v", g.file, i, err)
			continue
		}
		if diff := cmp.Diff(m, m2, msgOpts); diff != "" {
			t.Errorf("%s #%d: Decode(Encode(m)) mismatch (-want +got):\n%s", g.file, i, diff)
		}
		orig := g.frames[len(g.frames)-len(frames):] // same count after the identities
		for j, part := range []string{"header", "parent"} {
			var want, got map[string]any
			if err := json.Unmarshal(orig[n+2+j], &want); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(frames[n+2+j], &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s #%d: re-encoded %s lost fields (-kernel +ours):\n%s", g.file, i, part, diff)
			}
		}
		for j := n + 4; j < len(frames); j++ { // metadata, content, buffers
			if !bytes.Equal(orig[j], frames[j]) {
				t.Errorf("%s #%d: frame %d changed: %q -> %q", g.file, i, j, orig[j], frames[j])
			}
		}
	}

	for file, byType := range seen {
		t.Run(file, func(t *testing.T) {
			need := func(key string, match func(*jmsg.Message) bool) {
				t.Helper()
				for _, m := range byType[key] {
					if match(m) {
						return
					}
				}
				t.Errorf("no matching %q among %d recorded", key, len(byType[key]))
			}
			content := func(m *jmsg.Message) map[string]any {
				var c map[string]any
				if err := m.Decode(&c); err != nil {
					t.Fatal(err)
				}
				return c
			}
			any := func(*jmsg.Message) bool { return true }

			need("shell kernel_info_request", any)
			need("shell kernel_info_reply", func(m *jmsg.Message) bool {
				var c jmsg.KernelInfoReplyContent
				return m.Decode(&c) == nil && c.Status == "ok" && c.Implementation == "ipython"
			})
			need("iopub status", func(m *jmsg.Message) bool {
				return content(m)["execution_state"] == "busy" && strings.HasPrefix(string(m.Identities[0]), "kernel.")
			})
			need("iopub status", func(m *jmsg.Message) bool { return content(m)["execution_state"] == "idle" })
			need("iopub execute_input", func(m *jmsg.Message) bool {
				return content(m)["code"] == "print('hi'); 1+1" && m.Parent.MsgType == jmsg.ExecuteRequest
			})
			need("iopub stream", func(m *jmsg.Message) bool {
				var c jmsg.StreamContent
				return m.Decode(&c) == nil && c.Name == "stdout" && c.Text == "hi\n"
			})
			need("iopub execute_result", func(m *jmsg.Message) bool {
				var c jmsg.DisplayContent
				return m.Decode(&c) == nil && string(c.Data["text/plain"]) == `"2"`
			})
			need("shell execute_reply", func(m *jmsg.Message) bool { return content(m)["status"] == "ok" })
			need("control shutdown_request", any)
			need("control shutdown_reply", any)
			if !strings.Contains(file, "sha256") {
				return // the short recording
			}
			need("shell execute_reply", func(m *jmsg.Message) bool { return content(m)["status"] == "error" })
			need("iopub error", func(m *jmsg.Message) bool {
				var c jmsg.ErrorContent
				return m.Decode(&c) == nil && c.Ename == "ZeroDivisionError" && len(c.Traceback) > 0
			})
			need("stdin input_request", func(m *jmsg.Message) bool {
				var c jmsg.InputRequestContent
				return m.Decode(&c) == nil && c.Prompt == "name? " && len(m.Identities) == 0
			})
			need("stdin input_reply", func(m *jmsg.Message) bool { return m.Parent.MsgType == jmsg.InputRequest })
			need("iopub stream", func(m *jmsg.Message) bool { return content(m)["text"] == "got kg\n" })
			need("iopub display_data", func(m *jmsg.Message) bool {
				var c jmsg.DisplayContent
				return m.Decode(&c) == nil && string(c.Data["text/html"]) == `"<b>x</b>"`
			})
			need("iopub comm_msg", func(m *jmsg.Message) bool {
				// The second buffer is the delimiter's bytes: only the first
				// delimiter frame separates identities.
				want := [][]byte{{0x00, 0x01, 0xfe, 0xff}, []byte(Delimiter)}
				return cmp.Equal(want, m.Buffers)
			})
		})
	}
}
