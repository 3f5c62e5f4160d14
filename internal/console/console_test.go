package console

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kernelgate/kernelgate/internal/jmsg"
)

// pngBase64 encodes a real w×h PNG as base64, as kernels send image/png.
func pngBase64(t *testing.T, w, h int) string {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for x := range w {
		for y := range h {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 128, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatalf("png.Encode: %v", err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

// jsonString is s as a JSON string value.
func jsonString(t *testing.T, s string) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSummary(t *testing.T) {
	img := pngBase64(t, 64, 48)
	wide := pngBase64(t, 300, 2)
	html := "<table><tr><td>1</td></tr></table>"
	htmlRaw := jsonString(t, html)
	badPNG := jsonString(t, strings.Repeat("!", 40))
	notPNG := jsonString(t, base64.StdEncoding.EncodeToString([]byte("GIF89a this is not a png at all, really")))
	tests := []struct {
		name string
		data map[string]json.RawMessage
		want string
	}{
		{
			name: "empty",
			data: nil,
			want: "",
		},
		{
			name: "text only",
			data: map[string]json.RawMessage{"text/plain": jsonString(t, "42")},
			want: "42",
		},
		{
			name: "multi-line text only, even starting with <",
			data: map[string]json.RawMessage{"text/plain": jsonString(t, "<object>\nline 2")},
			want: "<object>\nline 2",
		},
		{
			name: "png",
			data: map[string]json.RawMessage{"image/png": jsonString(t, img)},
			want: "[image/png 64x48]",
		},
		{
			name: "png with repr text omitted",
			data: map[string]json.RawMessage{
				"image/png":  jsonString(t, wide),
				"text/plain": jsonString(t, "<Figure size 640x480 with 1 Axes>"),
			},
			want: "[image/png 300x2]",
		},
		{
			name: "png with meaningful text",
			data: map[string]json.RawMessage{
				"image/png":  jsonString(t, img),
				"text/plain": jsonString(t, "a plot"),
			},
			want: "[image/png 64x48]\na plot",
		},
		{
			name: "html and text",
			data: map[string]json.RawMessage{
				"text/html":  htmlRaw,
				"text/plain": jsonString(t, "   a\n0  1"),
			},
			want: "[text/html " + byteSize(len(htmlRaw)) + "]\n   a\n0  1",
		},
		{
			name: "bad base64 png falls back to a size note",
			data: map[string]json.RawMessage{"image/png": badPNG},
			want: "[image/png 42 B]",
		},
		{
			name: "short png falls back to a size note",
			data: map[string]json.RawMessage{"image/png": jsonString(t, "iVBORw0KGgo=")},
			want: "[image/png 14 B]",
		},
		{
			name: "valid base64 that is not a png",
			data: map[string]json.RawMessage{"image/png": notPNG},
			want: "[image/png " + byteSize(len(notPNG)) + "]",
		},
		{
			name: "png that is not a JSON string",
			data: map[string]json.RawMessage{"image/png": json.RawMessage(`{"x":1}`)},
			want: "[image/png 7 B]",
		},
		{
			name: "several rich types sorted, then text",
			data: map[string]json.RawMessage{
				"text/plain":                     jsonString(t, "Figure()"),
				"application/vnd.plotly.v1+json": json.RawMessage(`{"data":[]}`),
				"text/html":                      json.RawMessage(`"<b>x</b>"`),
				"application/json":               json.RawMessage(`[1,2,3]`),
				"image/png":                      jsonString(t, img),
			},
			want: "[application/json 7 B] [application/vnd.plotly.v1+json 11 B] [image/png 64x48] [text/html 10 B]\nFigure()",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Summary(tt.data)); diff != "" {
				t.Errorf("Summary (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPNGSize(t *testing.T) {
	tests := []struct {
		name   string
		b64    string
		w, h   int
		wantOK bool
	}{
		{name: "1x1", b64: pngBase64(t, 1, 1), w: 1, h: 1, wantOK: true},
		{name: "640x480", b64: pngBase64(t, 640, 480), w: 640, h: 480, wantOK: true},
		{name: "tall", b64: pngBase64(t, 3, 1000), w: 3, h: 1000, wantOK: true},
		{name: "empty", b64: ""},
		{name: "too short", b64: "iVBORw0KGgo="},
		{name: "not base64", b64: strings.Repeat("*", 64)},
		{name: "jpeg", b64: base64.StdEncoding.EncodeToString(append([]byte{0xff, 0xd8, 0xff, 0xe0}, make([]byte, 40)...))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, h, ok := pngSize(tt.b64)
			if ok != tt.wantOK || w != tt.w || h != tt.h {
				t.Errorf("pngSize = %d, %d, %v; want %d, %d, %v", w, h, ok, tt.w, tt.h, tt.wantOK)
			}
		})
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		n    int
		want string
	}{
		{0, "0 B"},
		{1, "1 B"},
		{1023, "1023 B"},
		{1024, "1.0 KB"},
		{1536, "1.5 KB"},
		{10 * 1024, "10.0 KB"},
		{1<<20 - 1<<10, "1023.0 KB"},
		{1 << 20, "1.0 MB"},
		{5*(1<<20) + 1<<19, "5.5 MB"},
		{3 << 30, "3072.0 MB"},
	}
	for _, tt := range tests {
		if got := byteSize(tt.n); got != tt.want {
			t.Errorf("byteSize(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func newMsg(t *testing.T, msgType string, content any) *jmsg.Message {
	t.Helper()
	parent := jmsg.NewHeader(jmsg.ExecuteRequest, "session", "user")
	m, err := jmsg.New(msgType, "session", "user", &parent, content)
	if err != nil {
		t.Fatalf("jmsg.New(%s): %v", msgType, err)
	}
	return m
}

func TestRender(t *testing.T) {
	img := pngBase64(t, 20, 10)
	tests := []struct {
		name    string
		msg     *jmsg.Message
		wantOut string
		wantErr string
	}{
		{
			name:    "stdout",
			msg:     newMsg(t, jmsg.Stream, jmsg.StreamContent{Name: "stdout", Text: "hello\n"}),
			wantOut: "hello\n",
		},
		{
			name:    "stdout partial line is not terminated",
			msg:     newMsg(t, jmsg.Stream, jmsg.StreamContent{Name: "stdout", Text: "50%"}),
			wantOut: "50%",
		},
		{
			name:    "stderr",
			msg:     newMsg(t, jmsg.Stream, jmsg.StreamContent{Name: "stderr", Text: "warning: x\n"}),
			wantErr: "warning: x\n",
		},
		{
			name: "error with traceback",
			msg: newMsg(t, jmsg.Error, jmsg.ErrorContent{
				Ename:     "ZeroDivisionError",
				Evalue:    "division by zero",
				Traceback: []string{"Traceback (most recent call last):", "  Cell In[1], line 1", "ZeroDivisionError: division by zero"},
			}),
			wantErr: "Traceback (most recent call last):\n  Cell In[1], line 1\nZeroDivisionError: division by zero\n",
		},
		{
			name:    "error without traceback",
			msg:     newMsg(t, jmsg.Error, jmsg.ErrorContent{Ename: "KeyboardInterrupt", Evalue: "interrupted"}),
			wantErr: "KeyboardInterrupt: interrupted\n",
		},
		{
			name: "execute_result prints text",
			msg: newMsg(t, jmsg.ExecuteResult, jmsg.DisplayContent{
				Data:           map[string]json.RawMessage{"text/plain": jsonString(t, "'hi'")},
				ExecutionCount: 3,
			}),
			wantOut: "'hi'\n",
		},
		{
			name: "display_data png",
			msg: newMsg(t, jmsg.DisplayData, jmsg.DisplayContent{
				Data: map[string]json.RawMessage{"image/png": jsonString(t, img), "text/plain": jsonString(t, "<Figure>")},
			}),
			wantOut: "[image/png 20x10]\n",
		},
		{
			name: "update_display_data",
			msg: newMsg(t, jmsg.UpdateDisplayData, jmsg.DisplayContent{
				Data: map[string]json.RawMessage{"text/plain": jsonString(t, "progress 2/3")},
			}),
			wantOut: "progress 2/3\n",
		},
		{
			name: "status is not rendered",
			msg:  newMsg(t, jmsg.Status, jmsg.StatusContent{ExecutionState: "busy"}),
		},
		{
			name: "execute_input is not rendered",
			msg:  newMsg(t, jmsg.ExecuteInput, map[string]any{"code": "print(1)", "execution_count": 1}),
		},
		{
			name: "clear_output is not rendered",
			msg:  newMsg(t, jmsg.ClearOutput, map[string]any{"wait": false}),
		},
		{
			name: "undecodable stream content is dropped",
			msg:  &jmsg.Message{Header: jmsg.NewHeader(jmsg.Stream, "s", "u"), Content: json.RawMessage(`{"name":1}`)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errw bytes.Buffer
			Render(tt.msg, &out, &errw)
			if diff := cmp.Diff(tt.wantOut, out.String()); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantErr, errw.String()); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
}
