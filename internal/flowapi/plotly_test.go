package flowapi

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var divIDRE = regexp.MustCompile(`<div id="([^"]+)" class="plotly-graph-div"`)

func divID(t *testing.T, h string) string {
	t.Helper()
	m := divIDRE.FindStringSubmatch(h)
	if m == nil {
		t.Fatalf("no plotly div in %q", h)
	}
	return m[1]
}

var newPlotRE = regexp.MustCompile(`(?s)Plotly\.newPlot\(("[^"]+"), (.*)\);\n\}\n</script>`)

// checkFigureHTML checks the structure of figure HTML: one div whose id the
// script draws into, plotly.js from url, the figure data, and no way for the
// data to end the script element early.
func checkFigureHTML(t *testing.T, h, url, data string) {
	t.Helper()
	id := divID(t, h)
	if !strings.Contains(h, `<script type="text/javascript" src="`+url+`"></script>`) {
		t.Errorf("figure HTML does not load %s:\n%s", url, h)
	}
	m := newPlotRE.FindStringSubmatch(h)
	if m == nil {
		t.Fatalf("no Plotly.newPlot call in:\n%s", h)
	}
	if m[1] != `"`+id+`"` {
		t.Errorf("newPlot draws into %s, the div is %q", m[1], id)
	}
	if !strings.Contains(m[2], data) {
		t.Errorf("newPlot arguments %s do not hold %s", m[2], data)
	}
	if n := strings.Count(h, "</script>"); n != 2 {
		t.Errorf("%d </script> tags, want 2 (the loader and the plot):\n%s", n, h)
	}
	if strings.Contains(m[2], "<!--") {
		t.Errorf("newPlot arguments contain <!--: %s", m[2])
	}
}

func TestPlotlyHTML(t *testing.T) {
	const evil = "</script><script>alert(1)</script><!--<script>"
	fig := map[string]any{
		"data":   []any{map[string]any{"type": "bar", "x": []any{"a", "b"}, "y": []any{1, 2}, "name": evil}},
		"layout": map[string]any{"title": map[string]any{"text": "Sales \u2028 2024"}, "height": 300},
		"config": map[string]any{"displaylogo": true, "scrollZoom": true},
	}
	raw := rawJSON(t, fig) // as Python's json.dumps writes it: "<" unescaped
	if !strings.Contains(string(raw), "</script>") {
		t.Fatalf("test figure %s lost its </script>", raw)
	}
	h, ok := PlotlyHTML("fig-1", raw, "/static/plotly.js")
	if !ok {
		t.Fatal("PlotlyHTML failed")
	}
	checkFigureHTML(t, h, "/static/plotly.js", `"x":["a","b"],"y":[1,2]`)
	if !strings.Contains(h, `<\/script><script>alert(1)<\/script>`) {
		t.Errorf("the malicious name is not escaped as <\\/script>:\n%s", h)
	}
	if strings.Contains(h, "\u2028") {
		t.Error("a raw U+2028 is left in the script")
	}

	// The escaped arguments still decode to the figure (escapes are valid
	// JSON), and the config is the figure's over the defaults.
	m := newPlotRE.FindStringSubmatch(h)
	var args []any
	if err := json.Unmarshal([]byte("["+m[2]+"]"), &args); err != nil {
		t.Fatalf("newPlot arguments are not JSON: %v\n%s", err, m[2])
	}
	want := []any{
		js(t, mustJSON(t, fig["data"])),
		js(t, mustJSON(t, fig["layout"])),
		map[string]any{"displaylogo": true, "scrollZoom": true, "responsive": true},
	}
	if diff := cmp.Diff(want, args); diff != "" {
		t.Errorf("newPlot arguments (-want +got):\n%s", diff)
	}
}

// rawJSON encodes v without Go's HTML escaping, as a kernel does.
func rawJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(b.Bytes())
}

func TestPlotlyHTMLShapes(t *testing.T) {
	tests := []struct {
		name string
		fig  string
		ok   bool
		has  []string
	}{
		{"minimal", `{}`, true, []string{`Plotly.newPlot("id1", [], {}, {"displaylogo":false,"responsive":true})`}},
		{"null parts", `{"data":null,"layout":null,"config":null}`, true, []string{`Plotly.newPlot("id1", [], {}, {"displaylogo":false,"responsive":true})`}},
		{"frames", `{"data":[],"frames":[{"name":"f0","data":[]}]}`, true, []string{`.then(function () { return Plotly.addFrames("id1", [{"name":"f0","data":[]}]); })`}},
		{"whitespace compacted", "{\"data\" : [ 1 ,\n 2 ] }", true, []string{`Plotly.newPlot("id1", [1,2], {}`}},
		{"not an object", `[1]`, false, nil},
		{"a string", `"fig"`, false, nil},
		{"not JSON", `{`, false, nil},
		{"null", `null`, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, ok := PlotlyHTML("id1", json.RawMessage(tt.fig), "")
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			for _, s := range tt.has {
				if !strings.Contains(h, s) {
					t.Errorf("HTML lacks %s:\n%s", s, h)
				}
			}
			if ok && !strings.Contains(h, `src="`+DefaultPlotlyScriptURL+`"`) {
				t.Errorf("an empty script URL does not fall back to %s", DefaultPlotlyScriptURL)
			}
		})
	}
}

// Ids and URLs are attribute-escaped.
func TestPlotlyHTMLAttributes(t *testing.T) {
	h, ok := PlotlyHTML(`a"b`, json.RawMessage(`{}`), `/x?a=1&b="2"`)
	if !ok {
		t.Fatal("PlotlyHTML failed")
	}
	for _, s := range []string{`id="a&#34;b"`, `src="/x?a=1&amp;b=&#34;2&#34;"`, `Plotly.newPlot("a\"b"`} {
		if !strings.Contains(h, s) {
			t.Errorf("HTML lacks %s:\n%s", s, h)
		}
	}
}

func TestNewPlotlyIDUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewPlotlyID()
		if seen[id] {
			t.Fatalf("NewPlotlyID repeated %q", id)
		}
		if !regexp.MustCompile(`^kg-plotly-[0-9a-f]{8}-[0-9]+$`).MatchString(id) {
			t.Fatalf("NewPlotlyID = %q, not an id-safe token", id)
		}
		seen[id] = true
	}
}
