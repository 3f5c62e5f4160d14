package flowapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/kernelgate/kernelgate/internal/jmsg"
)

// request is the execute_request every test message answers.
var request = jmsg.NewHeader(jmsg.ExecuteRequest, "client-session", "user")

// kmsg builds a kernel message of type typ, a child of request.
func kmsg(t *testing.T, typ string, content any) *jmsg.Message {
	t.Helper()
	m, err := jmsg.New(typ, "kernel-session", "kernel", &request, content)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// decoded encodes m as the session would send it, checks it is valid JSON
// with a cell_id, and decodes it for comparison.
func decoded(t *testing.T, m Msg) map[string]any {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("json.Marshal(%v): %v", m, err)
	}
	if !json.Valid(b) {
		t.Fatalf("invalid JSON: %s", b)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func decodeAll(t *testing.T, msgs []Msg) []map[string]any {
	t.Helper()
	out := make([]map[string]any, 0, len(msgs))
	for _, m := range msgs {
		d := decoded(t, m)
		if _, ok := d["cell_id"].(string); !ok {
			t.Errorf("message without cell_id: %v", d)
		}
		out = append(out, d)
	}
	return out
}

// js decodes a JSON literal of the test's expectations.
func js(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad test JSON %q: %v", s, err)
	}
	return v
}

// tinyPNG is a real 2x1 PNG, base64-encoded as a kernel sends image/png.
func tinyPNG(t *testing.T) string {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 2, 1))
	img.Set(0, 0, color.RGBA{R: 255, A: 255})
	img.Set(1, 0, color.RGBA{B: 255, A: 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

// fields are the result fields of a final message with nothing in them;
// over replaces some.
func fields(t *testing.T, over string) map[string]any {
	t.Helper()
	f := map[string]any{
		"status": "ok", "execution_count": float64(0), "stdout": "", "stderr": "", "output": "",
		"error": "", "plots": []any{}, "result": nil, "table_result": nil, "variables": nil,
		"dataframe_variables": []any{}, "overwritten_variables": []any{}, "error_details": nil,
		"data": nil, "plot_count": float64(0), "plotly_count": float64(0), "total_plots": float64(0),
	}
	if over != "" {
		maps.Copy(f, js(t, over).(map[string]any))
	}
	return f
}

// okEnd is the pair of messages that ends a successful cell.
func okEnd(cellID string, f map[string]any) []map[string]any {
	flat := maps.Clone(f)
	flat["type"] = "execution_result"
	flat["cell_id"] = cellID
	return []map[string]any{
		{"type": "stream_output", "cell_id": cellID, "content": "", "is_last": true, "result": f},
		flat,
	}
}

// errEnd is the pair of messages that ends a failed cell.
func errEnd(cellID string, streaming bool, content string, errObj, f map[string]any) []map[string]any {
	first := map[string]any{"type": "stream_output", "cell_id": cellID, "content": content, "stream": "stderr", "is_last": true, "error": errObj}
	if streaming {
		return []map[string]any{first, {"type": "execution_error", "cell_id": cellID, "content": content, "is_last": true, "error": errObj}}
	}
	flat := maps.Clone(f)
	flat["type"] = "execution_result"
	flat["cell_id"] = cellID
	return []map[string]any{first, flat}
}

func chunk(cellID, stream, text string) map[string]any {
	return map[string]any{"type": "stream_output", "cell_id": cellID, "content": text, "stream": stream, "is_last": false}
}

// An ipykernel traceback, colors and all.
var ansiTraceback = []string{
	"\x1b[0;31m---------------------------------------------------------------------------\x1b[0m",
	"\x1b[0;31mZeroDivisionError\x1b[0m                         Traceback (most recent call last)",
	"Cell \x1b[0;32mIn[4], line 2\x1b[0m\n\x1b[1;32m      1\x1b[0m \x1b[38;5;28mprint\x1b[39m(\x1b[38;5;241m1\x1b[39m)\n\x1b[0;32m----> 2\x1b[0m \x1b[38;5;241;43m1\x1b[39;49m\x1b[38;5;241;43m/\x1b[39;49m\x1b[38;5;241;43m0\x1b[39;49m\n",
	"\x1b[0;31mZeroDivisionError\x1b[0m: division by zero",
}

var plainTraceback = []any{
	"---------------------------------------------------------------------------",
	"ZeroDivisionError                         Traceback (most recent call last)",
	"Cell In[4], line 2",
	"      1 print(1)",
	"----> 2 1/0",
	"",
	"ZeroDivisionError: division by zero",
}

func plainTracebackText() string {
	var s []string
	for _, l := range plainTraceback {
		s = append(s, l.(string))
	}
	return strings.Join(s, "\n")
}

// The realistic pandas table bundle of pd.DataFrame({"a": [1.0, None]}).
const frameBundle = `{"schema":{"fields":[{"name":"index","type":"integer"},{"name":"a","type":"number"}],"primaryKey":["index"],"pandas_version":"1.4.0"},"data":[{"index":0,"a":1.0},{"index":1,"a":null}]}`

// bigFrameBundle is a 1000-row table bundle (pandas with display.max_rows
// raised) of a frame with columns b then a.
func bigFrameBundle(rows int) string {
	var b strings.Builder
	b.WriteString(`{"schema":{"fields":[{"name":"index","type":"integer"},{"name":"b","type":"string"},{"name":"a","type":"integer"}],"primaryKey":["index"],"pandas_version":"1.4.0"},"data":[`)
	for i := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"index":%d,"b":"r%d","a":%d}`, i, i, i*2)
	}
	b.WriteString("]}")
	return b.String()
}

type displayContent struct {
	Data      map[string]any `json:"data"`
	Metadata  map[string]any `json:"metadata"`
	Transient map[string]any `json:"transient,omitempty"`
}

type resultContent struct {
	Data           map[string]any `json:"data"`
	Metadata       map[string]any `json:"metadata"`
	ExecutionCount int            `json:"execution_count"`
}

func TestCell(t *testing.T) {
	b64 := tinyPNG(t)
	pngData := map[string]any{"image/png": b64 + "\n", "text/plain": "<Figure size 640x480 with 1 Axes>"}
	pngMeta := map[string]any{"image/png": map[string]any{"width": 2, "height": 1}}
	state := &FlowState{
		Variables:          json.RawMessage(`{"x":41,"mydf":{"type":"DataFrame","shape":[2,1],"columns":["a"],"data":[{"a":1.0},{"a":null}],"truncated":false}}`),
		DataFrameVariables: json.RawMessage(`[{"name":"mydf","data":[{"a":1.0},{"a":null}],"columns":[{"key":"a","label":"a"}],"shape":[2,1],"truncated":false}]`),
	}
	frameRecords := func(n int) []any {
		var out []any
		for i := range n {
			out = append(out, map[string]any{"b": fmt.Sprintf("r%d", i), "a": float64(i * 2)})
		}
		return out
	}

	tests := []struct {
		name      string
		cellID    string
		streaming bool
		opts      CellOptions
		in        func(t *testing.T) []*jmsg.Message
		end       CellEnd
		want      func(t *testing.T) []map[string]any
	}{
		{
			name:   "print then result",
			cellID: "c1",
			in: func(t *testing.T) []*jmsg.Message {
				return []*jmsg.Message{
					kmsg(t, jmsg.Status, map[string]any{"execution_state": "busy"}),
					kmsg(t, jmsg.ExecuteInput, map[string]any{"code": "x = 41\nprint('hello', x+1)\nx*2", "execution_count": 3}),
					kmsg(t, jmsg.Stream, jmsg.StreamContent{Name: "stdout", Text: "hello 42\n"}),
					kmsg(t, jmsg.ExecuteResult, resultContent{Data: map[string]any{"text/plain": "82"}, Metadata: map[string]any{}, ExecutionCount: 3}),
					kmsg(t, jmsg.Status, map[string]any{"execution_state": "idle"}),
				}
			},
			end: CellEnd{Reply: jmsg.ExecuteReplyContent{Status: "ok", ExecutionCount: 3}, State: state},
			want: func(t *testing.T) []map[string]any {
				f := fields(t, `{"execution_count":3,"stdout":"hello 42\n","output":"hello 42\n","result":"82",
					"variables":{"x":41,"mydf":{"type":"DataFrame","shape":[2,1],"columns":["a"],"data":[{"a":1.0},{"a":null}],"truncated":false}},
					"dataframe_variables":[{"name":"mydf","data":[{"a":1.0},{"a":null}],"columns":[{"key":"a","label":"a"}],"shape":[2,1],"truncated":false}]}`)
				return append([]map[string]any{chunk("c1", "stdout", "hello 42\n")}, okEnd("c1", f)...)
			},
		},
		{
			name:   "stderr, colored",
			cellID: "c6",
			in: func(t *testing.T) []*jmsg.Message {
				return []*jmsg.Message{
					kmsg(t, jmsg.Stream, jmsg.StreamContent{Name: "stderr", Text: "\x1b[31mwarn!\x1b[0m\n"}),
					kmsg(t, jmsg.Stream, jmsg.StreamContent{Name: "stdout", Text: "ok\n"}),
				}
			},
			end: CellEnd{Reply: jmsg.ExecuteReplyContent{Status: "ok", ExecutionCount: 1}},
			want: func(t *testing.T) []map[string]any {
				f := fields(t, `{"execution_count":1,"stdout":"ok\n","output":"ok\n","stderr":"warn!\n"}`)
				return append([]map[string]any{chunk("c6", "stderr", "warn!\n"), chunk("c6", "stdout", "ok\n")}, okEnd("c6", f)...)
			},
		},
		{
			name:   "error with ANSI traceback",
			cellID: "c4",
			in: func(t *testing.T) []*jmsg.Message {
				return []*jmsg.Message{
					kmsg(t, jmsg.ExecuteInput, map[string]any{"code": "print(1)\n1/0", "execution_count": 4}),
					kmsg(t, jmsg.Stream, jmsg.StreamContent{Name: "stdout", Text: "1\n"}),
					kmsg(t, jmsg.Error, jmsg.ErrorContent{Ename: "ZeroDivisionError", Evalue: "division by zero", Traceback: ansiTraceback}),
				}
			},
			end: CellEnd{Reply: jmsg.ExecuteReplyContent{Status: "error", ExecutionCount: 4, Ename: "ZeroDivisionError", Evalue: "division by zero", Traceback: ansiTraceback}},
			want: func(t *testing.T) []map[string]any {
				errObj := map[string]any{"ename": "ZeroDivisionError", "evalue": "division by zero", "traceback": plainTraceback}
				f := fields(t, `{"status":"error","execution_count":4,"stdout":"1\n","output":"1\n","error":"division by zero"}`)
				f["error_details"] = map[string]any{"message": "division by zero", "ename": "ZeroDivisionError", "evalue": "division by zero", "traceback": plainTraceback}
				return append([]map[string]any{chunk("c4", "stdout", "1\n")}, errEnd("c4", false, plainTracebackText(), errObj, f)...)
			},
		},
		{
			name:      "streaming failure ends with execution_error",
			cellID:    "d7",
			streaming: true,
			in: func(t *testing.T) []*jmsg.Message {
				return []*jmsg.Message{
					kmsg(t, jmsg.Error, jmsg.ErrorContent{Ename: "ValueError", Evalue: "bad", Traceback: []string{"\x1b[0;31mValueError\x1b[0m: bad"}}),
				}
			},
			end: CellEnd{Reply: jmsg.ExecuteReplyContent{Status: "error", ExecutionCount: 2}},
			want: func(t *testing.T) []map[string]any {
				errObj := map[string]any{"ename": "ValueError", "evalue": "bad", "traceback": []any{"ValueError: bad"}}
				return errEnd("d7", true, "ValueError: bad", errObj, nil)
			},
		},
		{
			name:      "streaming success still ends with execution_result",
			cellID:    "d6",
			streaming: true,
			in:        func(t *testing.T) []*jmsg.Message { return nil },
			end:       CellEnd{Reply: jmsg.ExecuteReplyContent{Status: "ok", ExecutionCount: 5}},
			want: func(t *testing.T) []map[string]any {
				return okEnd("d6", fields(t, `{"execution_count":5}`))
			},
		},
		{
			name:   "matplotlib PNG as data URI",
			cellID: "p1",
			in: func(t *testing.T) []*jmsg.Message {
				return []*jmsg.Message{kmsg(t, jmsg.DisplayData, displayContent{Data: pngData, Metadata: pngMeta})}
			},
			end: CellEnd{Reply: jmsg.ExecuteReplyContent{Status: "ok", ExecutionCount: 1}},
			want: func(t *testing.T) []map[string]any {
				uri := "data:image/png;base64," + b64
				disp := map[string]any{"type": "display_output", "cell_id": "p1", "plot": uri,
					"data": js(t, mustJSON(t, pngData)), "metadata": js(t, mustJSON(t, pngMeta))}
				f := fields(t, `{"execution_count":1,"plot_count":1,"total_plots":1}`)
				f["plots"] = []any{uri}
				return append([]map[string]any{disp}, okEnd("p1", f)...)
			},
		},
		{
			name:   "matplotlib PNG as raw base64",
			cellID: "p2",
			opts:   CellOptions{RawBase64Plots: true},
			in: func(t *testing.T) []*jmsg.Message {
				return []*jmsg.Message{kmsg(t, jmsg.DisplayData, displayContent{Data: pngData, Metadata: pngMeta})}
			},
			end: CellEnd{Reply: jmsg.ExecuteReplyContent{Status: "ok", ExecutionCount: 1}},
			want: func(t *testing.T) []map[string]any {
				disp := map[string]any{"type": "display_output", "cell_id": "p2", "plot": b64,
					"data": js(t, mustJSON(t, pngData)), "metadata": js(t, mustJSON(t, pngMeta))}
				f := fields(t, `{"execution_count":1,"plot_count":1,"total_plots":1}`)
				f["plots"] = []any{b64}
				return append([]map[string]any{disp}, okEnd("p2", f)...)
			},
		},
		{
			name:   "application/json result with a plot",
			cellID: "j1",
			in: func(t *testing.T) []*jmsg.Message {
				return []*jmsg.Message{
					kmsg(t, jmsg.Stream, jmsg.StreamContent{Name: "stdout", Text: "hi 5\n"}),
					kmsg(t, jmsg.DisplayData, displayContent{Data: map[string]any{"image/png": b64}}),
					kmsg(t, jmsg.ExecuteResult, resultContent{Data: map[string]any{"text/plain": "{'a': 1}", "application/json": map[string]any{"a": 1}}, ExecutionCount: 1}),
				}
			},
			end: CellEnd{Reply: jmsg.ExecuteReplyContent{Status: "ok", ExecutionCount: 1}},
			want: func(t *testing.T) []map[string]any {
				uri := "data:image/png;base64," + b64
				disp := map[string]any{"type": "display_output", "cell_id": "j1", "plot": uri,
					"data": map[string]any{"image/png": b64}, "metadata": map[string]any{}}
				f := fields(t, `{"execution_count":1,"stdout":"hi 5\n","output":"hi 5\n","result":{"a":1},"plot_count":1,"total_plots":1}`)
				f["plots"] = []any{uri}
				return append([]map[string]any{chunk("j1", "stdout", "hi 5\n"), disp}, okEnd("j1", f)...)
			},
		},
		{
			name:   "DataFrame result",
			cellID: "t1",
			in: func(t *testing.T) []*jmsg.Message {
				return []*jmsg.Message{kmsg(t, jmsg.ExecuteResult, resultContent{
					Data: map[string]any{
						"application/vnd.dataresource+json": js(t, frameBundle),
						"text/html":                         "<div><table class=\"dataframe\">…</table></div>",
						"text/plain":                        "     a\n0  1.0\n1  NaN",
					},
					Metadata:       map[string]any{},
					ExecutionCount: 7,
				})}
			},
			end: CellEnd{Reply: jmsg.ExecuteReplyContent{Status: "ok", ExecutionCount: 7}},
			want: func(t *testing.T) []map[string]any {
				f := fields(t, `{"execution_count":7,"result":[{"a":1.0},{"a":null}],
					"table_result":{"type":"table","data":[{"a":1.0},{"a":null}],"columns":[{"key":"a","label":"a"}],
						"title":"DataFrame Result","shape":[2,1],"truncated":false}}`)
				return okEnd("t1", f)
			},
		},
		{
			name:   "1000-row table capped at MaxTableRows",
			cellID: "t2",
			in: func(t *testing.T) []*jmsg.Message {
				return []*jmsg.Message{kmsg(t, jmsg.ExecuteResult, resultContent{
					Data: map[string]any{
						"application/vnd.dataresource+json": js(t, bigFrameBundle(1000)),
						"text/plain":                        "        b     a\n0      r0     0\n..    ...   ...\n999  r999  1998\n\n[1000 rows x 2 columns]",
					},
					Metadata:       map[string]any{},
					ExecutionCount: 8,
				})}
			},
			end: CellEnd{Reply: jmsg.ExecuteReplyContent{Status: "ok", ExecutionCount: 8}},
			want: func(t *testing.T) []map[string]any {
				f := fields(t, `{"execution_count":8,"table_result":{"type":"table","columns":[{"key":"b","label":"b"},{"key":"a","label":"a"}],
						"title":"DataFrame Result","shape":[1000,2],"truncated":true}}`)
				f["result"] = frameRecords(DefaultMaxTableRows)
				f["table_result"].(map[string]any)["data"] = frameRecords(DefaultMaxTableRows)
				return okEnd("t2", f)
			},
		},
		{
			name:   "kernel died",
			cellID: "k1",
			in: func(t *testing.T) []*jmsg.Message {
				return []*jmsg.Message{
					kmsg(t, jmsg.ExecuteInput, map[string]any{"code": "import os; print('start'); os._exit(3)", "execution_count": 9}),
					kmsg(t, jmsg.Stream, jmsg.StreamContent{Name: "stdout", Text: "start\n"}),
				}
			},
			end: CellEnd{Lost: "The kernel died: kernel process exited with status 3."},
			want: func(t *testing.T) []map[string]any {
				const reason = "The kernel died: kernel process exited with status 3."
				errObj := map[string]any{"ename": "KernelDied", "evalue": reason, "traceback": []any{}}
				f := fields(t, `{"status":"error","execution_count":9,"stdout":"start\n","output":"start\n"}`)
				f["error"] = reason
				f["error_details"] = map[string]any{"message": reason, "ename": "KernelDied", "evalue": reason, "traceback": []any{}}
				return append([]map[string]any{chunk("k1", "stdout", "start\n")}, errEnd("k1", false, "KernelDied: "+reason, errObj, f)...)
			},
		},
		{
			name:      "kernel restarted while streaming",
			cellID:    "k2",
			streaming: true,
			in:        func(t *testing.T) []*jmsg.Message { return nil },
			end:       CellEnd{Lost: "The kernel was restarted."},
			want: func(t *testing.T) []map[string]any {
				const reason = "The kernel was restarted."
				errObj := map[string]any{"ename": "KernelDied", "evalue": reason, "traceback": []any{}}
				return errEnd("k2", true, "KernelDied: "+reason, errObj, nil)
			},
		},
		{
			name:   "aborted after an earlier failure",
			cellID: "a1",
			in:     func(t *testing.T) []*jmsg.Message { return nil },
			end:    CellEnd{Reply: jmsg.ExecuteReplyContent{Status: "aborted"}},
			want: func(t *testing.T) []map[string]any {
				const reason = "The cell was not run because an earlier execution failed."
				errObj := map[string]any{"ename": "ExecutionAborted", "evalue": reason, "traceback": []any{}}
				f := fields(t, `{"status":"error"}`)
				f["error"] = reason
				f["error_details"] = map[string]any{"message": reason, "ename": "ExecutionAborted", "evalue": reason, "traceback": []any{}}
				return errEnd("a1", false, "ExecutionAborted: "+reason, errObj, f)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCell(tt.cellID, tt.streaming, tt.opts)
			var got []Msg
			for _, m := range tt.in(t) {
				got = append(got, c.Observe(m)...)
			}
			finish := c.Finish(tt.end)
			if len(finish) != 2 {
				t.Fatalf("Finish returned %d messages, want 2", len(finish))
			}
			got = append(got, finish...)
			if diff := cmp.Diff(tt.want(t), decodeAll(t, got)); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The table keeps its columns in the frame's order, on the wire too.
func TestTableColumnOrder(t *testing.T) {
	c := NewCell("t", false, CellOptions{MaxTableRows: 2})
	c.Observe(kmsg(t, jmsg.ExecuteResult, resultContent{Data: map[string]any{
		"application/vnd.dataresource+json": js(t, bigFrameBundle(3)),
		"text/plain":                        "x",
	}}))
	b, err := json.Marshal(c.Finish(CellEnd{Reply: jmsg.ExecuteReplyContent{Status: "ok"}})[1]["result"])
	if err != nil {
		t.Fatal(err)
	}
	if want := `[{"b":"r0","a":0},{"b":"r1","a":2}]`; string(b) != want {
		t.Errorf("result = %s, want %s", b, want)
	}
}

func TestParseTable(t *testing.T) {
	tests := []struct {
		name   string
		bundle string
		text   string
		max    int
		want   string // {"records", "columns", "shape", "truncated"}
	}{
		{
			name:   "default index dropped",
			bundle: frameBundle,
			max:    10,
			want:   `{"records":[{"a":1.0},{"a":null}],"columns":["a"],"shape":[2,1],"truncated":false}`,
		},
		{
			name:   "labelled index kept (describe)",
			bundle: `{"schema":{"fields":[{"name":"index","type":"string"},{"name":"count","type":"number"},{"name":"mean","type":"number"}],"primaryKey":["index"],"pandas_version":"1.4.0"},"data":[{"index":"a","count":1.0,"mean":1.0}]}`,
			max:    10,
			want:   `{"records":[{"index":"a","count":1.0,"mean":1.0}],"columns":["index","count","mean"],"shape":[1,2],"truncated":false}`,
		},
		{
			name:   "named index kept (groupby)",
			bundle: `{"schema":{"fields":[{"name":"region","type":"string"},{"name":"amount","type":"integer"}],"primaryKey":["region"],"pandas_version":"1.4.0"},"data":[{"region":"N","amount":10},{"region":"S","amount":5}]}`,
			max:    10,
			want:   `{"records":[{"region":"N","amount":10},{"region":"S","amount":5}],"columns":["region","amount"],"shape":[2,1],"truncated":false}`,
		},
		{
			name:   "integer column names",
			bundle: `{"schema":{"fields":[{"name":"index","type":"integer"},{"name":0,"type":"integer"}],"primaryKey":["index"],"pandas_version":"1.4.0"},"data":[{"index":0,"0":5}]}`,
			max:    10,
			want:   `{"records":[{"0":5}],"columns":["0"],"shape":[1,1],"truncated":false}`,
		},
		{
			name:   "series with its length from the repr",
			bundle: `{"schema":{"fields":[{"name":"index","type":"integer"},{"name":"s","type":"integer"}],"primaryKey":["index"],"pandas_version":"1.4.0"},"data":[{"index":0,"s":0},{"index":1,"s":1}]}`,
			text:   "0     0\n1     1\n     ..\n99   99\nName: s, Length: 100, dtype: int64",
			max:    10,
			want:   `{"records":[{"s":0},{"s":1}],"columns":["s"],"shape":[100,1],"truncated":true}`,
		},
		{
			name:   "capped",
			bundle: bigFrameBundle(5),
			max:    2,
			want:   `{"records":[{"b":"r0","a":0},{"b":"r1","a":2}],"columns":["b","a"],"shape":[5,2],"truncated":true}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb, ok := parseTable(json.RawMessage(tt.bundle), tt.text, tt.max)
			if !ok {
				t.Fatal("parseTable failed")
			}
			var cols []string
			for _, c := range tb.columns {
				cols = append(cols, c["key"].(string))
			}
			got := decodedAny(t, map[string]any{"records": tb.records, "columns": cols, "shape": tb.shape, "truncated": tb.truncated})
			if diff := cmp.Diff(js(t, tt.want), got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{`[]`, `{"schema":{}}`, `{"schema":{"fields":[{"name":"a"}]},"data":[1]}`} {
		if _, ok := parseTable(json.RawMessage(bad), "", 10); ok {
			t.Errorf("parseTable(%s) succeeded", bad)
		}
	}
}

func decodedAny(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCellInputRequest(t *testing.T) {
	c := NewCell("i1", false, CellOptions{})
	c.Observe(kmsg(t, jmsg.Stream, jmsg.StreamContent{Name: "stdout", Text: "Hello\n"}))
	got := decodeAll(t, c.Observe(kmsg(t, jmsg.InputRequest, jmsg.InputRequestContent{Prompt: "Name? "})))
	want := []map[string]any{{"type": "input_request", "cell_id": "i1", "prompt": "Name? ", "password": false}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("input_request (-want +got):\n%s", diff)
	}
	c.Observe(kmsg(t, jmsg.Stream, jmsg.StreamContent{Name: "stdout", Text: "Hi Bob\n"}))
	// A password prompt.
	got = decodeAll(t, c.Observe(kmsg(t, jmsg.InputRequest, jmsg.InputRequestContent{Prompt: "\x1b[1mPassword:\x1b[0m ", Password: true})))
	want = []map[string]any{{"type": "input_request", "cell_id": "i1", "prompt": "Password: ", "password": true}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("password input_request (-want +got):\n%s", diff)
	}
	// The kernel died while waiting: an error.
	fin := decodeAll(t, c.Finish(CellEnd{Lost: "The kernel died."}))
	if res := fin[1]; res["status"] != "error" || res["error"] != "The kernel died." || res["output"] != "Hello\nHi Bob\n" {
		t.Errorf("execution_result after a loss = %v, want status error and the output without the prompts", res)
	}
}

func TestPlotlyDisplay(t *testing.T) {
	const url = "https://cdn.example.org/plotly-2.35.2.min.js"
	fig := `{"data":[{"type":"scatter","x":[1,2],"y":[3,4],"name":"</script><script>alert(1)</script>"}],"layout":{"title":{"text":"Sales"}},"config":{"plotlyServerURL":"https://plot.ly"}}`
	c := NewCell("g1", false, CellOptions{PlotlyScriptURL: url})
	// The content as ipykernel writes it, with "</script>" unescaped.
	disp := kmsg(t, jmsg.DisplayData, nil)
	disp.Content = json.RawMessage(`{"data":{"application/vnd.plotly.v1+json":` + fig + `,"text/plain":"Figure(...)"},"metadata":{},"transient":{}}`)
	out := decodeAll(t, c.Observe(disp))
	if _, ok := out[0]["transient"]; ok {
		t.Errorf("an empty transient is sent: %v", out[0])
	}
	if len(out) != 1 || out[0]["type"] != "display_output" {
		t.Fatalf("Observe = %v, want one display_output", out)
	}
	h, _ := out[0]["plot"].(string)
	checkFigureHTML(t, h, url, `"x":[1,2],"y":[3,4]`)
	if got := out[0]["data"].(map[string]any)["application/vnd.plotly.v1+json"]; !cmp.Equal(got, js(t, fig)) {
		t.Errorf("display_output data = %v, want the bundle as sent", got)
	}

	// A figure as the last expression is a plot too; its HTML gets its own id.
	res := kmsg(t, jmsg.ExecuteResult, nil)
	res.Content = json.RawMessage(`{"data":{"application/vnd.plotly.v1+json":` + fig + `,"text/plain":"Figure(...)"},"metadata":{},"execution_count":1}`)
	c.Observe(res)
	fin := decodeAll(t, c.Finish(CellEnd{Reply: jmsg.ExecuteReplyContent{Status: "ok", ExecutionCount: 1}}))
	final := fin[0]["result"].(map[string]any)
	plots := final["plots"].([]any)
	if len(plots) != 2 || final["plotly_count"] != float64(2) || final["plot_count"] != float64(0) || final["total_plots"] != float64(2) {
		t.Fatalf("final result plots %d, counts %v/%v/%v; want 2 plotly figures", len(plots), final["plot_count"], final["plotly_count"], final["total_plots"])
	}
	if plots[0] != h {
		t.Error("the final plots do not hold the HTML that display_output sent")
	}
	if divID(t, plots[0].(string)) == divID(t, plots[1].(string)) {
		t.Error("two figures share a div id")
	}
	if final["result"] != "Figure(...)" {
		t.Errorf("result = %v, want the text/plain repr", final["result"])
	}
	checkFigureHTML(t, plots[1].(string), url, `"x":[1,2],"y":[3,4]`)
}

// Update a display in place, and clear_output, keep the final plots to what
// is on screen.
func TestDisplayUpdatesAndClear(t *testing.T) {
	img := func(s string) map[string]any { return map[string]any{"image/png": s} }
	c := NewCell("u1", false, CellOptions{RawBase64Plots: true})
	var got []Msg
	got = append(got, c.Observe(kmsg(t, jmsg.DisplayData, displayContent{Data: img("AAAA"), Transient: map[string]any{"display_id": "d1"}}))...)
	got = append(got, c.Observe(kmsg(t, jmsg.DisplayData, displayContent{Data: img("BBBB")}))...)
	got = append(got, c.Observe(kmsg(t, jmsg.UpdateDisplayData, displayContent{Data: img("CCCC"), Transient: map[string]any{"display_id": "d1"}}))...)
	got = append(got, c.Observe(kmsg(t, jmsg.UpdateDisplayData, displayContent{Data: img("DDDD"), Transient: map[string]any{"display_id": "elsewhere"}}))...)
	got = append(got, c.Observe(kmsg(t, jmsg.DisplayData, displayContent{Data: map[string]any{"text/plain": "just text"}}))...)
	d := decodeAll(t, got)
	if len(d) != 5 {
		t.Fatalf("%d display_output messages, want 5", len(d))
	}
	if d[2]["plot"] != "CCCC" || d[2]["transient"].(map[string]any)["display_id"] != "d1" {
		t.Errorf("update message = %v, want plot CCCC with its transient", d[2])
	}
	if _, ok := d[4]["plot"]; ok {
		t.Errorf("text-only display has a plot: %v", d[4])
	}
	res := decodeAll(t, c.Finish(CellEnd{Reply: jmsg.ExecuteReplyContent{Status: "ok"}}))[1]
	if diff := cmp.Diff([]any{"CCCC", "BBBB"}, res["plots"]); diff != "" {
		t.Errorf("plots after an update (-want +got):\n%s", diff)
	}
	c.Observe(kmsg(t, jmsg.ClearOutput, map[string]any{"wait": true}))
	c.Observe(kmsg(t, jmsg.DisplayData, displayContent{Data: img("EEEE")}))
	res = decodeAll(t, c.Finish(CellEnd{Reply: jmsg.ExecuteReplyContent{Status: "ok"}}))[1]
	if diff := cmp.Diff([]any{"EEEE"}, res["plots"]); diff != "" {
		t.Errorf("plots after clear_output (-want +got):\n%s", diff)
	}
}

func TestPlotChoice(t *testing.T) {
	svg := `<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>`
	tests := []struct {
		name string
		data map[string]any
		raw  bool
		want string // prefix of the plot; "" for none
		kind cellPlotKind
	}{
		{"png", map[string]any{"image/png": "iVBORw0KGgo=\n", "text/html": "<b>x</b>"}, false, "data:image/png;base64,iVBORw0KGgo=", plotImage},
		{"png raw", map[string]any{"image/png": "iVBOR\nw0KGgo="}, true, "iVBORw0KGgo=", plotImage},
		{"jpeg stays a URI when raw", map[string]any{"image/jpeg": "/9j/4AAQ"}, true, "data:image/jpeg;base64,/9j/4AAQ", plotImage},
		{"svg", map[string]any{"image/svg+xml": svg}, false, "data:image/svg+xml;base64," + base64.StdEncoding.EncodeToString([]byte(svg)), plotImage},
		{"svg as lines", map[string]any{"image/svg+xml": []string{"<svg>", "</svg>"}}, false, "data:image/svg+xml;base64," + base64.StdEncoding.EncodeToString([]byte("<svg></svg>")), plotImage},
		{"plotly beats png", map[string]any{"image/png": "iVBOR", "application/vnd.plotly.v1+json": map[string]any{"data": []any{}}}, false, "<html>", plotPlotly},
		{"bad plotly falls back", map[string]any{"image/png": "iVBOR", "application/vnd.plotly.v1+json": "nope"}, false, "data:image/png;base64,iVBOR", plotImage},
		{"html when nothing better", map[string]any{"text/html": "<b>x</b>", "text/plain": "x"}, false, "<b>x</b>", plotHTML},
		{"text only", map[string]any{"text/plain": "x"}, false, "", 0},
		{"empty png", map[string]any{"image/png": ""}, false, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := map[string]json.RawMessage{}
			for k, v := range tt.data {
				raw[k] = json.RawMessage(mustJSON(t, v))
			}
			c := NewCell("x", false, CellOptions{RawBase64Plots: tt.raw})
			p, ok := c.plotFor(raw)
			if tt.want == "" {
				if ok {
					t.Errorf("plot %q, want none", p.s)
				}
				return
			}
			if !ok || !strings.HasPrefix(p.s, tt.want) || p.kind != tt.kind {
				t.Errorf("plot %.60q kind %d, want prefix %q kind %d", p.s, p.kind, tt.want, tt.kind)
			}
			if tt.kind == plotImage && p.s != tt.want {
				t.Errorf("plot %q, want %q", p.s, tt.want)
			}
		})
	}
}

func TestStripANSI(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain text\n", "plain text\n"},
		{"\x1b[0;31mZeroDivisionError\x1b[0m: division by zero", "ZeroDivisionError: division by zero"},
		{"\x1b[38;5;241;43m1\x1b[39;49m", "1"},
		{"\x1b[1m\x1b[4mbold underline\x1b[24m\x1b[22m", "bold underline"},
		{"cursor\x1b[2K\x1b[1Gline", "cursorline"},
		{"\x1b[?25lhidden cursor\x1b[?25h", "hidden cursor"},
		{"\x1b]0;window title\x07after", "after"},
		{"\x1b]8;;https://example.org\x1b\\link\x1b]8;;\x1b\\", "link"},
		{"charset \x1b(Bswitch", "charset switch"},
		{"keypad \x1b=mode", "keypad mode"},
		{"unterminated \x1b]title with no end", "unterminated title with no end"},
		{"trailing escape \x1b", "trailing escape "},
		{"truncated CSI \x1b[31", "truncated CSI "},
		{"ü \x1b[32mgrün\x1b[0m ✓", "ü grün ✓"},
		{"tqdm\r 50%|█████     |\r100%|██████████|", "tqdm\r 50%|█████     |\r100%|██████████|"},
	}
	for _, tt := range tests {
		if got := StripANSI(tt.in); got != tt.want {
			t.Errorf("StripANSI(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// Garbage and unknown messages never produce invalid output.
func TestObserveOddMessages(t *testing.T) {
	c := NewCell("o", false, CellOptions{})
	odd := []*jmsg.Message{
		nil,
		{Header: jmsg.Header{MsgType: jmsg.Stream}, Content: json.RawMessage(`[1,2]`)},
		{Header: jmsg.Header{MsgType: jmsg.DisplayData}, Content: json.RawMessage(`{"data":{"image/png":5}}`)},
		{Header: jmsg.Header{MsgType: jmsg.ExecuteResult}, Content: json.RawMessage(`{"data":{"application/vnd.dataresource+json":{"schema":7}}}`)},
		{Header: jmsg.Header{MsgType: jmsg.CommOpen}, Content: json.RawMessage(`{}`)},
		kmsg(t, jmsg.Stream, jmsg.StreamContent{Name: "stdout", Text: "\x1b[0m"}), // nothing left to send
	}
	var got []Msg
	for _, m := range odd {
		got = append(got, c.Observe(m)...)
	}
	got = append(got, c.Finish(CellEnd{Reply: jmsg.ExecuteReplyContent{Status: "ok"}})...)
	d := decodeAll(t, got)
	if len(d) != 3 || d[0]["type"] != "display_output" {
		t.Fatalf("messages %v, want a display_output without plot and the two final messages", d)
	}
	if _, ok := d[0]["plot"]; ok {
		t.Errorf("a non-string image/png made a plot: %v", d[0])
	}
	if r := d[1]["result"].(map[string]any)["result"]; r != nil {
		t.Errorf("result of an unreadable table = %v, want null", r)
	}
}

// State that is not JSON is left out rather than breaking the message.
func TestInvalidState(t *testing.T) {
	c := NewCell("s", false, CellOptions{})
	fin := decodeAll(t, c.Finish(CellEnd{Reply: jmsg.ExecuteReplyContent{Status: "ok"}, State: &FlowState{
		Variables:          json.RawMessage(`{"x": NaN}`),
		DataFrameVariables: json.RawMessage(`null`),
	}}))
	res := fin[0]["result"].(map[string]any)
	if res["variables"] != nil || !cmp.Equal(res["dataframe_variables"], []any{}) {
		t.Errorf("variables %v, dataframe_variables %v; want null and []", res["variables"], res["dataframe_variables"])
	}
}

func TestTailBuffer(t *testing.T) {
	// mixed is many small writes with a large one every 100th.
	mixed := func() []string {
		var w []string
		for i := range 1000 {
			if i%100 == 99 {
				w = append(w, strings.Repeat(string(rune('A'+i/100)), 150))
				continue
			}
			w = append(w, fmt.Sprintf("%d;", i))
		}
		return w
	}
	tailOf := func(w []string, n int) string {
		s := strings.Join(w, "")
		return s[len(s)-n:]
	}
	tests := []struct {
		name   string
		max    int
		writes []string
		want   string // "" with wantFn nil
		wantFn func(w []string) string
	}{
		{name: "nothing written", max: 4},
		{name: "fits", max: 10, writes: []string{"abc", "", "def"}, want: "abcdef"},
		{name: "exactly max", max: 6, writes: []string{"abc", "def"}, want: "abcdef"},
		{name: "one byte over", max: 6, writes: []string{"abc", "defg"}, want: "bcdefg"},
		{name: "one large write", max: 8, writes: []string{strings.Repeat("x", 100) + "TAIL1234"}, want: "TAIL1234"},
		{name: "large then small", max: 8, writes: []string{strings.Repeat("x", 100) + "TAIL1234", "ab"}, want: "IL1234ab"},
		{name: "small then large", max: 8, writes: []string{"ab", "cd", strings.Repeat("y", 20) + "12345678"}, want: "12345678"},
		{name: "many small writes", max: 10, writes: func() []string {
			var w []string
			for i := range 1000 {
				w = append(w, fmt.Sprintf("%d,", i))
			}
			return w
		}(), want: "7,998,999,"},
		{name: "many small and some large writes", max: 64, writes: mixed(), wantFn: func(w []string) string { return tailOf(w, 64) }},
		{name: "large writes ending the output", max: 200, writes: mixed()[:900], wantFn: func(w []string) string { return tailOf(w, 200) }},
		{name: "rune split at the cut", max: 4, writes: []string{"aé", "€xy"}, want: "xy"},
		{name: "rune across writes at the cut", max: 5, writes: []string{"a\xe2", "\x82\xac", "bcd"}, want: "bcd"},
		{name: "2-byte runes", max: 5, writes: slices.Repeat([]string{"é"}, 100), want: "éé"},
		{name: "4-byte runes", max: 6, writes: slices.Repeat([]string{"😀"}, 50), want: "😀"},
		{name: "no whole rune fits", max: 3, writes: []string{"😀😀"}, want: ""},
		{name: "uncut output is kept as is", max: 10, writes: []string{"\x80ab"}, want: "\x80ab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tailBuffer{max: tt.max}
			var total int64
			for _, w := range tt.writes {
				b.WriteString(w)
				total += int64(len(w))
				if len(b.buf) > 2*tt.max {
					t.Fatalf("buffer holds %d bytes, more than 2*%d", len(b.buf), tt.max)
				}
			}
			want := tt.want
			if tt.wantFn != nil {
				want = tt.wantFn(tt.writes)
			}
			got := b.String()
			if got != want {
				t.Errorf("String() = %q, want %q", got, want)
			}
			if len(got) > tt.max {
				t.Errorf("String() has %d bytes, more than %d", len(got), tt.max)
			}
			if b.total != total {
				t.Errorf("total = %d, want %d", b.total, total)
			}
		})
	}
}

// A cell that prints megabytes ends with messages that hold only the end of
// its output, and say so; the streamed chunks are all sent.
func TestCellFinalOutputTruncated(t *testing.T) {
	const chunks, chunkLen = 1000, 3000 // 3 MB
	chunkText := func(i int) string {
		// 5 + 2*1497 + 1 = 3000 bytes; the 1 MiB cut falls inside an "é".
		return fmt.Sprintf("%04d:", i) + strings.Repeat("é", 1497) + "\n"
	}
	c := NewCell("big", false, CellOptions{})
	var all strings.Builder
	streamed := 0
	for i := range chunks {
		text := chunkText(i)
		if len(text) != chunkLen {
			t.Fatalf("chunk of %d bytes", len(text))
		}
		all.WriteString(text)
		out := c.Observe(kmsg(t, jmsg.Stream, jmsg.StreamContent{Name: "stdout", Text: text}))
		if len(out) != 1 || out[0]["content"] != text {
			t.Fatalf("chunk %d streamed as %.80v", i, out)
		}
		streamed++
	}
	if streamed != chunks {
		t.Fatalf("%d chunks streamed, want %d", streamed, chunks)
	}
	fin := c.Finish(CellEnd{Reply: jmsg.ExecuteReplyContent{Status: "ok", ExecutionCount: 1}})
	for i, m := range fin {
		b, err := json.Marshal(m)
		if err != nil || !json.Valid(b) {
			t.Fatalf("final message %d: invalid JSON (%v)", i, err)
		}
		if len(b) > 3<<20 {
			t.Errorf("final message %d has %d bytes", i, len(b))
		}
	}
	d := decodeAll(t, fin)
	for i, f := range []map[string]any{d[0]["result"].(map[string]any), d[1]} {
		stdout, _ := f["stdout"].(string)
		if len(stdout) > DefaultMaxFinalOutputBytes || len(stdout) < DefaultMaxFinalOutputBytes-3 {
			t.Errorf("message %d: stdout has %d bytes, want at most %d and nearly that", i, len(stdout), DefaultMaxFinalOutputBytes)
		}
		if !strings.HasSuffix(stdout, chunkText(chunks-1)) || !strings.HasSuffix(all.String(), stdout) {
			t.Errorf("message %d: stdout is not the end of the output", i)
		}
		if !utf8.ValidString(stdout) {
			t.Errorf("message %d: stdout starts inside a rune: %q…", i, stdout[:8])
		}
		if f["output"] != stdout || f["stderr"] != "" {
			t.Errorf("message %d: output differs from stdout, or stderr %q", i, f["stderr"])
		}
		if f["output_truncated"] != true || f["output_bytes"] != float64(chunks*chunkLen) || f["stderr_bytes"] != float64(0) {
			t.Errorf("message %d: output_truncated %v, output_bytes %v, stderr_bytes %v; want true, %d, 0",
				i, f["output_truncated"], f["output_bytes"], f["stderr_bytes"], chunks*chunkLen)
		}
	}

	// A cut stderr alone is reported too, with a small MaxFinalOutputBytes.
	c = NewCell("err", false, CellOptions{MaxFinalOutputBytes: 8})
	c.Observe(kmsg(t, jmsg.Stream, jmsg.StreamContent{Name: "stdout", Text: "short\n"}))
	c.Observe(kmsg(t, jmsg.Stream, jmsg.StreamContent{Name: "stderr", Text: "warning 1\n"}))
	c.Observe(kmsg(t, jmsg.Stream, jmsg.StreamContent{Name: "stderr", Text: "warning 2\n"}))
	res := decodeAll(t, c.Finish(CellEnd{Reply: jmsg.ExecuteReplyContent{Status: "ok"}}))[1]
	want := js(t, `{"stdout":"short\n","output":"short\n","stderr":"rning 2\n","output_truncated":true,"output_bytes":6,"stderr_bytes":20}`).(map[string]any)
	for k, v := range want {
		if res[k] != v {
			t.Errorf("%s = %v, want %v", k, res[k], v)
		}
	}
}

// A runaway printer is cut at MaxStreamBytes with one notice; nothing more
// is streamed, and the final result says so.
func TestCellStreamCap(t *testing.T) {
	parent := jmsg.NewHeader(jmsg.ExecuteRequest, "s", "u")
	c := NewCell("cap", false, CellOptions{MaxStreamBytes: 1000})
	var sent int
	var notices int
	for i := range 50 {
		m, err := jmsg.New(jmsg.Stream, "s", "u", &parent, jmsg.StreamContent{Name: "stdout", Text: strings.Repeat("é", 50) + fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		for _, out := range c.Observe(m) {
			if out["truncated"] == true {
				notices++
				continue
			}
			text := out["content"].(string)
			if !utf8.ValidString(text) {
				t.Fatalf("chunk cut inside a rune: %q", text)
			}
			sent += len(text)
		}
	}
	if sent > 1000 || sent < 990 || notices != 1 {
		t.Fatalf("sent %d bytes with %d notices, want at most 1000 and exactly one notice", sent, notices)
	}
	final := c.Finish(CellEnd{Reply: jmsg.ExecuteReplyContent{Status: "ok", ExecutionCount: 1}})
	if final[1]["stream_truncated"] != true {
		t.Fatalf("final result lacks stream_truncated: %v", final[1])
	}
}

func TestConfigTimeout(t *testing.T) {
	for _, tt := range []struct{ max, asked, want time.Duration }{
		{0, 0, 0},
		{0, time.Second, time.Second},
		{time.Minute, 0, time.Minute},
		{time.Minute, time.Second, time.Second},
		{time.Minute, time.Hour, time.Minute},
	} {
		if got := (Config{ExecutionTimeout: tt.max}).timeout(tt.asked); got != tt.want {
			t.Errorf("max %s, asked %s: %s, want %s", tt.max, tt.asked, got, tt.want)
		}
	}
}
